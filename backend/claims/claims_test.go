package claims

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestCompatibility(t *testing.T) {
	// The classic matrix (Gray et al. 1975), both ways round.
	yes := map[[2]Mode]bool{
		{IS, IS}: true, {IS, IX}: true, {IS, S}: true,
		{IX, IS}: true, {IX, IX}: true,
		{S, IS}: true, {S, S}: true,
	}
	for a := IS; a <= X; a++ {
		for b := IS; b <= X; b++ {
			t.Run(a.String()+"_"+b.String(), func(t *testing.T) {
				if got := Compatible(a, b); got != yes[[2]Mode{a, b}] {
					t.Errorf("Compatible(%v, %v) = %v", a, b, got)
				}
			})
		}
	}
}

// blocked reports whether Acquire of c waits while held is held.
func TestConflicts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		held, c  Claim
		conflict bool
	}{
		{"write_vs_write_same", Write("/a"), Write("/a"), true},
		{"write_vs_write_sibling", Write("/a/x"), Write("/a/y"), false},
		{"move_folder_vs_put_into", Write("/a"), Write("/a/b/c"), true},
		{"put_into_vs_move_folder", Write("/a/b/c"), Write("/a"), true},
		{"copy_source_vs_put_into", Read("/a"), Write("/a/b"), true},
		{"two_copy_sources", Read("/a"), Read("/a"), false},
		{"copy_source_vs_read_inside", Read("/a"), Read("/a/b"), false},
		{"write_parent_name_prefix", Write("/ab"), Write("/a"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tb := &Table{Wait: time.Second}
				rel, err := tb.Acquire(t.Context(), tc.held)
				if err != nil {
					t.Fatal(err)
				}
				defer rel()
				rel2, err := tb.Acquire(t.Context(), tc.c)
				if tc.conflict != errors.Is(err, ErrBusy) {
					t.Fatalf("second Acquire: %v, want conflict %v", err, tc.conflict)
				}
				if err == nil {
					rel2()
				}
			})
		})
	}
}

func TestAllOrNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := &Table{Wait: time.Second}
		rel, _ := tb.Acquire(t.Context(), Write("/b"))
		// /a is free, /b is not: the MOVE /a -> /b must hold neither while it waits.
		done := make(chan error)
		go func() {
			r, err := tb.Acquire(t.Context(), Write("/a"), Write("/b"))
			if err == nil {
				r()
			}
			done <- err
		}()
		synctest.Wait()
		tb.mu.Lock()
		_, holdsA := tb.held["/a"]
		tb.mu.Unlock()
		if holdsA {
			t.Fatal("a blocked acquisition holds /a")
		}
		rel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestBusyAfterWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := &Table{Wait: 3 * time.Second}
		rel, _ := tb.Acquire(t.Context(), Write("/a"))
		defer rel()
		start := time.Now()
		_, err := tb.Acquire(t.Context(), Write("/a/b"))
		if !errors.Is(err, ErrBusy) || time.Since(start) != 3*time.Second {
			t.Fatalf("got %v after %v, want ErrBusy after 3s", err, time.Since(start))
		}
		if len(tb.queue) != 0 {
			t.Fatalf("queue keeps %d waiters", len(tb.queue))
		}
	})
}

func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := &Table{}
		rel, _ := tb.Acquire(t.Context(), Write("/a"))
		defer rel()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := tb.Acquire(ctx, Write("/a")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestReleaseWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := &Table{}
		rel, _ := tb.Acquire(t.Context(), Write("/a"))
		got := make(chan time.Duration)
		start := time.Now()
		for range 3 {
			go func() {
				r, err := tb.Acquire(t.Context(), Claim{"/a/x", IS})
				if err != nil {
					t.Error(err)
					return
				}
				got <- time.Since(start)
				r()
			}()
		}
		time.Sleep(time.Second)
		rel()
		for range 3 {
			if d := <-got; d != time.Second {
				t.Errorf("woken after %v", d)
			}
		}
	})
}

// TestNoStarvation: a folder MOVE (X) waiting behind uploads into the folder (IX) is
// served before uploads that arrive after it.
func TestNoStarvation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := &Table{Wait: time.Minute}
		var order []string
		rel, _ := tb.Acquire(t.Context(), Write("/d/1"))
		moved := make(chan struct{})
		go func() {
			r, err := tb.Acquire(t.Context(), Write("/d"))
			if err != nil {
				t.Error(err)
			}
			order = append(order, "move")
			r()
			close(moved)
		}()
		synctest.Wait()
		later := make(chan struct{})
		go func() {
			r, err := tb.Acquire(t.Context(), Write("/d/2"))
			if err != nil {
				t.Error(err)
			}
			order = append(order, "put2")
			r()
			close(later)
		}()
		synctest.Wait()
		rel()
		<-moved
		<-later
		if len(order) != 2 || order[0] != "move" {
			t.Fatalf("order %v, want the move first", order)
		}
	})
}

func TestExpand(t *testing.T) {
	got := expand([]Claim{Read("/a/b"), Write("/a/c/d")})
	want := map[string]Mode{"/": IX, "/a": IX, "/a/b": S, "/a/c": IX, "/a/c/d": X}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	if m := expand([]Claim{Read("/a"), Write("/a/b")})["/a"]; m != X {
		t.Errorf("S+IX on one name = %v, want X", m)
	}
}
