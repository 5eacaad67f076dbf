package backendtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"safedav/backend"
)

// The namespace races (issue 20): a write and a namespace operation (MOVE, COPY or
// DELETE of a file or a tree) started together. Each round runs the pair once in a
// fresh folder, then an oracle checks that the outcome is one that some order of the
// two explains: an acknowledged upload is findable where that order puts it, a write
// into a folder already taken away fails with ErrParentMissing, of two MOVEs of one
// file one wins, a folder DELETE that succeeded leaves nothing under it.

// raceRounds is how many rounds a race runs (fewer with -short). On a laptop
// raceBudget bounds a race's wall time whatever the backend's speed; under CI
// (CI=true) every round runs however slow the machine is, and only go test's
// -timeout stops a backend that hangs: a race's verdict never depends on the clock.
const (
	raceRounds      = 200
	raceRoundsShort = 30
	raceBudget      = 4 * time.Second
)

// races are the cases Run adds to the suite.
var races = []struct {
	name string
	fn   func(t *testing.T, b backend.Backend)
}{
	{"race/move_file_vs_put_source", raceMoveFileVsPutSource},
	{"race/move_folder_vs_put_into", raceMoveFolderVsPutInto},
	{"race/delete_folder_vs_put_into", raceDeleteFolderVsPutInto},
	{"race/two_moves_of_one_file", raceTwoMoves},
	{"race/copy_folder_vs_put_into", raceCopyFolderVsPutInto},
	{"race/copy_folder_vs_replace_inside", raceCopyFolderVsReplaceInside},
	{"race/move_vs_mkcol_inside", raceMoveVsMkcolInside},
	{"race/delete_file_vs_put", raceDeleteFileVsPut},
	{"race/move_file_vs_proppatch", raceMoveVsPatchProps},
}

// pair is one race: setup prepares the folder dir, a and b run together, and check
// returns "" when the outcome is one some order of a and b explains, or what is wrong.
type pair struct {
	setup func(ctx context.Context, b backend.Backend, dir string) error
	a, b  func(ctx context.Context, b backend.Backend, dir string) error
	check func(ctx context.Context, b backend.Backend, dir string, errA, errB error) string
}

// runRace runs p for raceRounds rounds (on a laptop: or raceBudget, whichever ends
// first), and fails with the number of rounds no order explains and the first such outcome.
func runRace(t *testing.T, be backend.Backend, p pair) {
	ctx := t.Context()
	rounds := raceRounds
	if testing.Short() {
		rounds = raceRoundsShort
	}
	ci := os.Getenv("CI") == "true" && !testing.Short()
	deadline := time.Now().Add(raceBudget)
	bad, done := 0, 0
	var first string
	for i := 0; i < rounds && (ci || time.Now().Before(deadline)); i++ {
		dir := fmt.Sprintf("/r%d", i)
		if _, err := be.Mkdir(ctx, dir, backend.Cond{}); err != nil {
			t.Fatalf("Mkdir(%q): %v", dir, err)
		}
		if err := p.setup(ctx, be, dir); err != nil {
			t.Fatalf("round %d: setup: %v", i, err)
		}
		start := make(chan struct{})
		var errA, errB error
		var wg sync.WaitGroup
		wg.Go(func() { <-start; errA = p.a(ctx, be, dir) })
		wg.Go(func() { <-start; errB = p.b(ctx, be, dir) })
		close(start)
		wg.Wait()
		done++
		if msg := p.check(ctx, be, dir, errA, errB); msg != "" {
			if bad == 0 {
				first = fmt.Sprintf("round %d: %s", i, msg)
			}
			bad++
		}
	}
	t.Logf("%d rounds", done)
	if bad > 0 {
		t.Errorf("%d of %d rounds end in a state no order of the two operations explains; first: %s", bad, done, first)
	}
}

func putString(ctx context.Context, b backend.Backend, name, content string) error {
	_, _, err := b.Put(ctx, name, strings.NewReader(content), backend.Cond{}, backend.Meta{Size: int64(len(content))})
	return err
}

// content reads name: ok false when it does not exist.
func content(ctx context.Context, b backend.Backend, name string) (string, bool, error) {
	rc, _, err := b.Open(ctx, name)
	if errors.Is(err, backend.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), true, err
}

// state describes name for the oracles: "-" when missing, "/" for a folder, or the
// content of a file in quotes.
func state(ctx context.Context, b backend.Backend, name string) string {
	in, err := b.Stat(ctx, name)
	switch {
	case errors.Is(err, backend.ErrNotExist):
		return "-"
	case err != nil:
		return "error: " + err.Error()
	case in.Dir:
		return "/"
	}
	c, ok, err := content(ctx, b, name)
	if err != nil || !ok {
		return fmt.Sprintf("unreadable: %v", err)
	}
	return fmt.Sprintf("%q", c)
}

// is checks names against the states one order gives: "" when they all match.
func is(ctx context.Context, b backend.Backend, want map[string]string) string {
	var diffs []string
	for name, w := range want {
		if got := state(ctx, b, name); got != w {
			diffs = append(diffs, fmt.Sprintf("%s is %s, want %s", name, got, w))
		}
	}
	return strings.Join(diffs, "; ")
}

// either returns "" when one of the orders' expectations holds, else all the diffs.
func either(orders ...string) string {
	for _, o := range orders {
		if o == "" {
			return ""
		}
	}
	return strings.Join(orders, " | or | ")
}

func errs(what string, err error, ok ...error) string {
	if err == nil {
		for _, e := range ok {
			if e == nil {
				return ""
			}
		}
		return what + " succeeded"
	}
	for _, e := range ok {
		if e != nil && errors.Is(err, e) {
			return ""
		}
	}
	return fmt.Sprintf("%s: %v", what, err)
}

// raceMoveFileVsPutSource: MOVE x -> y with a PUT of new content to x. Either the PUT
// came first (y holds the new content, x is gone) or the MOVE did (y holds the old
// one, x the new one). Never: the PUT acknowledged and its content nowhere.
func raceMoveFileVsPutSource(t *testing.T, be backend.Backend) {
	runRace(t, be, pair{
		setup: func(ctx context.Context, b backend.Backend, d string) error { return putString(ctx, b, d+"/x", "old") },
		a: func(ctx context.Context, b backend.Backend, d string) error {
			_, err := b.Move(ctx, d+"/x", d+"/y", backend.Cond{})
			return err
		},
		b: func(ctx context.Context, b backend.Backend, d string) error { return putString(ctx, b, d+"/x", "new") },
		check: func(ctx context.Context, b backend.Backend, d string, move, put error) string {
			if m := errs("MOVE", move, nil) + errs("PUT", put, nil); m != "" {
				return m
			}
			return either(
				is(ctx, b, map[string]string{d + "/x": "-", d + "/y": `"new"`}),
				is(ctx, b, map[string]string{d + "/x": `"new"`, d + "/y": `"old"`}))
		},
	})
}

// raceMoveFolderVsPutInto: MOVE src/ -> dst/ with a PUT of src/new. Either the PUT came
// first (dst/new holds it) or it fails with ErrParentMissing (dst/new absent); src is
// gone either way.
func raceMoveFolderVsPutInto(t *testing.T, be backend.Backend) {
	runRace(t, be, pair{
		setup: folderWithA,
		a: func(ctx context.Context, b backend.Backend, d string) error {
			_, err := b.Move(ctx, d+"/src", d+"/dst", backend.Cond{})
			return err
		},
		b: func(ctx context.Context, b backend.Backend, d string) error {
			return putString(ctx, b, d+"/src/new", "new")
		},
		check: func(ctx context.Context, b backend.Backend, d string, move, put error) string {
			if m := errs("MOVE", move, nil) + errs("PUT", put, nil, backend.ErrParentMissing); m != "" {
				return m
			}
			want := map[string]string{d + "/src": "-", d + "/src/new": "-", d + "/dst/a": `"a"`, d + "/dst/new": "-"}
			if put == nil {
				want[d+"/dst/new"] = `"new"`
			}
			return is(ctx, b, want)
		},
	})
}

func folderWithA(ctx context.Context, b backend.Backend, d string) error {
	if _, err := b.Mkdir(ctx, d+"/src", backend.Cond{}); err != nil {
		return err
	}
	return putString(ctx, b, d+"/src/a", "a")
}

// raceDeleteFolderVsPutInto: DELETE src/ with a PUT of src/new. The DELETE succeeds and
// leaves nothing: the PUT either came first (and was deleted) or fails with
// ErrParentMissing.
func raceDeleteFolderVsPutInto(t *testing.T, be backend.Backend) {
	runRace(t, be, pair{
		setup: folderWithA,
		a: func(ctx context.Context, b backend.Backend, d string) error {
			return b.Remove(ctx, d+"/src", backend.Cond{})
		},
		b: func(ctx context.Context, b backend.Backend, d string) error {
			return putString(ctx, b, d+"/src/new", "new")
		},
		check: func(ctx context.Context, b backend.Backend, d string, del, put error) string {
			if m := errs("DELETE", del, nil) + errs("PUT", put, nil, backend.ErrParentMissing); m != "" {
				return m
			}
			return is(ctx, b, map[string]string{d + "/src": "-", d + "/src/new": "-", d + "/src/a": "-"})
		},
	})
}

// raceTwoMoves: MOVE x -> y and MOVE x -> z. One wins, the other finds x gone
// (ErrNotExist, or ErrPrecondition when it lost at the commit); never two copies.
func raceTwoMoves(t *testing.T, be backend.Backend) {
	mv := func(to string) func(ctx context.Context, b backend.Backend, d string) error {
		return func(ctx context.Context, b backend.Backend, d string) error {
			_, err := b.Move(ctx, d+"/x", d+to, backend.Cond{})
			return err
		}
	}
	runRace(t, be, pair{
		setup: func(ctx context.Context, b backend.Backend, d string) error { return putString(ctx, b, d+"/x", "x") },
		a:     mv("/y"),
		b:     mv("/z"),
		check: func(ctx context.Context, b backend.Backend, d string, errY, errZ error) string {
			lost := []error{backend.ErrNotExist, backend.ErrPrecondition}
			switch {
			case errY == nil && errZ == nil:
				return "both MOVEs succeeded; " + is(ctx, b, map[string]string{d + "/y": "-", d + "/z": "-"})
			case errY == nil:
				if m := errs("MOVE to z", errZ, lost...); m != "" {
					return m
				}
				return is(ctx, b, map[string]string{d + "/x": "-", d + "/y": `"x"`, d + "/z": "-"})
			case errZ == nil:
				if m := errs("MOVE to y", errY, lost...); m != "" {
					return m
				}
				return is(ctx, b, map[string]string{d + "/x": "-", d + "/y": "-", d + "/z": `"x"`})
			}
			return fmt.Sprintf("both MOVEs failed: %v; %v", errY, errZ)
		},
	})
}

// raceCopyFolderVsPutInto: COPY src/ -> dst/ with a PUT of src/new. The copy is a
// snapshot: dst/new is there with the PUT's content or not at all.
func raceCopyFolderVsPutInto(t *testing.T, be backend.Backend) {
	runRace(t, be, pair{
		setup: folderWithA,
		a: func(ctx context.Context, b backend.Backend, d string) error {
			_, err := b.Copy(ctx, d+"/src", d+"/dst", backend.Cond{}, backend.DepthInfinity)
			return err
		},
		b: func(ctx context.Context, b backend.Backend, d string) error {
			return putString(ctx, b, d+"/src/new", "new")
		},
		check: func(ctx context.Context, b backend.Backend, d string, cp, put error) string {
			if m := errs("COPY", cp, nil) + errs("PUT", put, nil); m != "" {
				return m
			}
			base := map[string]string{d + "/src/new": `"new"`, d + "/src/a": `"a"`, d + "/dst/a": `"a"`}
			after, before := copyMap(base), copyMap(base)
			after[d+"/dst/new"] = "-"
			before[d+"/dst/new"] = `"new"`
			return either(is(ctx, b, after), is(ctx, b, before))
		},
	})
}

// raceCopyFolderVsReplaceInside: COPY src/ -> dst/ with a PUT replacing src/a. The
// copy holds one version of a, whole, and succeeds.
func raceCopyFolderVsReplaceInside(t *testing.T, be backend.Backend) {
	runRace(t, be, pair{
		setup: folderWithA,
		a: func(ctx context.Context, b backend.Backend, d string) error {
			_, err := b.Copy(ctx, d+"/src", d+"/dst", backend.Cond{}, backend.DepthInfinity)
			return err
		},
		b: func(ctx context.Context, b backend.Backend, d string) error {
			return putString(ctx, b, d+"/src/a", "a2")
		},
		check: func(ctx context.Context, b backend.Backend, d string, cp, put error) string {
			if m := errs("COPY", cp, nil) + errs("PUT", put, nil); m != "" {
				return m
			}
			return either(
				is(ctx, b, map[string]string{d + "/src/a": `"a2"`, d + "/dst/a": `"a"`}),
				is(ctx, b, map[string]string{d + "/src/a": `"a2"`, d + "/dst/a": `"a2"`}))
		},
	})
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// raceMoveVsMkcolInside: MOVE src/ -> dst/ with MKCOL src/sub. Either the MKCOL came
// first (dst/sub is a folder) or it fails with ErrParentMissing.
func raceMoveVsMkcolInside(t *testing.T, be backend.Backend) {
	runRace(t, be, pair{
		setup: folderWithA,
		a: func(ctx context.Context, b backend.Backend, d string) error {
			_, err := b.Move(ctx, d+"/src", d+"/dst", backend.Cond{})
			return err
		},
		b: func(ctx context.Context, b backend.Backend, d string) error {
			_, err := b.Mkdir(ctx, d+"/src/sub", backend.Cond{})
			return err
		},
		check: func(ctx context.Context, b backend.Backend, d string, move, mk error) string {
			if m := errs("MOVE", move, nil) + errs("MKCOL", mk, nil, backend.ErrParentMissing); m != "" {
				return m
			}
			want := map[string]string{d + "/src": "-", d + "/src/sub": "-", d + "/dst/a": `"a"`, d + "/dst/sub": "-"}
			if mk == nil {
				want[d+"/dst/sub"] = "/"
			}
			return is(ctx, b, want)
		},
	})
}

// raceDeleteFileVsPut: DELETE x with a PUT of x. Both succeed; x holds the PUT's
// content (DELETE first) or is gone (PUT first).
func raceDeleteFileVsPut(t *testing.T, be backend.Backend) {
	runRace(t, be, pair{
		setup: func(ctx context.Context, b backend.Backend, d string) error { return putString(ctx, b, d+"/x", "old") },
		a: func(ctx context.Context, b backend.Backend, d string) error {
			return b.Remove(ctx, d+"/x", backend.Cond{})
		},
		b: func(ctx context.Context, b backend.Backend, d string) error { return putString(ctx, b, d+"/x", "new") },
		check: func(ctx context.Context, b backend.Backend, d string, del, put error) string {
			if m := errs("DELETE", del, nil) + errs("PUT", put, nil); m != "" {
				return m
			}
			return either(is(ctx, b, map[string]string{d + "/x": "-"}), is(ctx, b, map[string]string{d + "/x": `"new"`}))
		},
	})
}

// raceMoveVsPatchProps: MOVE x -> y with a PROPPATCH of x. Either the PROPPATCH came
// first (y carries the property) or it fails with ErrNotExist; x never keeps a stray
// property sidecar that a new x would inherit.
func raceMoveVsPatchProps(t *testing.T, be backend.Backend) {
	ps, ok := be.(backend.PropStore)
	if !ok {
		t.Skip("no dead properties")
	}
	p := prop("urn:t:", "p", "v")
	runRace(t, be, pair{
		setup: func(ctx context.Context, b backend.Backend, d string) error { return putString(ctx, b, d+"/x", "x") },
		a: func(ctx context.Context, b backend.Backend, d string) error {
			_, err := b.Move(ctx, d+"/x", d+"/y", backend.Cond{})
			return err
		},
		b: func(ctx context.Context, b backend.Backend, d string) error {
			return ps.PatchProps(ctx, d+"/x", backend.Cond{}, []backend.PropPatch{{Prop: p}})
		},
		check: func(ctx context.Context, b backend.Backend, d string, move, patch error) string {
			if m := errs("MOVE", move, nil) + errs("PROPPATCH", patch, nil, backend.ErrNotExist); m != "" {
				return m
			}
			if m := is(ctx, b, map[string]string{d + "/x": "-", d + "/y": `"x"`}); m != "" {
				return m
			}
			props, err := ps.Props(ctx, d+"/y")
			if err != nil {
				return err.Error()
			}
			if (patch == nil) != (len(props) == 1) {
				return fmt.Sprintf("PROPPATCH: %v, but y has %d properties", patch, len(props))
			}
			// A new x must start without properties.
			if err := putString(ctx, b, d+"/x", "x2"); err != nil {
				return err.Error()
			}
			if props, err := ps.Props(ctx, d+"/x"); err != nil || len(props) != 0 {
				return fmt.Sprintf("a new x has properties %v (%v)", props, err)
			}
			return ""
		},
	})
}
