package precond

import (
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"safedav/backend"
)

var (
	t0     = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	date0  = t0.Format(http.TimeFormat)
	before = t0.Add(-time.Hour).Format(http.TimeFormat)
	after  = t0.Add(time.Hour).Format(http.TimeFormat)
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		h       http.Header
		want    Request
		wantErr bool
	}{
		{"none [RFC9110 13.1]", http.Header{"Content-Type": {"text/plain"}}, Request{}, false},
		{"if_match_star [RFC9110 13.1.1]", http.Header{"If-Match": {"*"}}, Request{IfMatch: []string{"*"}}, false},
		{"if_match_star_ows [RFC9110 5.6.3]", http.Header{"If-Match": {" * "}}, Request{IfMatch: []string{"*"}}, false},
		{"if_match_tags [RFC9110 13.1.1]", http.Header{"If-Match": {`"a", W/"b" ,"c"`}},
			Request{IfMatch: []string{`"a"`, `W/"b"`, `"c"`}}, false},
		{"if_match_lines_joined [RFC9110 5.3]", http.Header{"If-Match": {`"a"`, `"b", "c"`}},
			Request{IfMatch: []string{`"a"`, `"b"`, `"c"`}}, false},
		{"if_match_empty_elements [RFC9110 5.6.1.2]", http.Header{"If-Match": {`, "a",, ,"b",`}},
			Request{IfMatch: []string{`"a"`, `"b"`}}, false},
		{"if_match_empty_list [RFC9110 5.6.1]", http.Header{"If-Match": {""}}, Request{IfMatch: []string{}}, false},
		{"if_match_empty_tag [RFC9110 8.8.3]", http.Header{"If-Match": {`""`}}, Request{IfMatch: []string{`""`}}, false},
		{"if_match_obs_text [RFC9110 8.8.3]", http.Header{"If-Match": {"\"\xe9t\xe9\""}}, Request{IfMatch: []string{"\"\xe9t\xe9\""}}, false},
		{"if_none_match_star [RFC9110 13.1.2]", http.Header{"If-None-Match": {"*"}}, Request{IfNoneMatch: []string{"*"}}, false},
		{"if_none_match_tags [RFC9110 13.1.2]", http.Header{"If-None-Match": {`W/"x", "y"`}},
			Request{IfNoneMatch: []string{`W/"x"`, `"y"`}}, false},
		{"if_match_unquoted [RFC9110 8.8.3]", http.Header{"If-Match": {"abc"}}, Request{}, true},
		{"if_match_unterminated [RFC9110 8.8.3]", http.Header{"If-Match": {`"abc`}}, Request{}, true},
		{"if_match_dquote_inside [RFC9110 8.8.3]", http.Header{"If-Match": {`"a"b"`}}, Request{}, true},
		{"if_match_space_inside [RFC9110 8.8.3]", http.Header{"If-Match": {`"a b"`}}, Request{}, true},
		{"if_match_lowercase_weak [RFC9110 8.8.3]", http.Header{"If-Match": {`w/"a"`}}, Request{}, true},
		{"if_match_missing_comma [RFC9110 5.6.1]", http.Header{"If-Match": {`"a" "b"`}}, Request{}, true},
		{"if_match_star_and_tag [RFC9110 13.1.1]", http.Header{"If-Match": {`*, "a"`}}, Request{}, true},
		{"if_match_star_and_tag_lines [RFC9110 13.1.1]", http.Header{"If-Match": {`*`, `"a"`}}, Request{}, true},
		{"if_match_two_stars [RFC9110 13.1.1]", http.Header{"If-Match": {`*, *`}}, Request{}, true},
		{"if_match_weak_star [RFC9110 13.1.1]", http.Header{"If-Match": {`W/*`}}, Request{}, true},
		{"if_none_match_garbage [RFC9110 13.1.2]", http.Header{"If-None-Match": {`"a", garbage`}}, Request{}, true},
		{"if_unmodified_since [RFC9110 13.1.4]", http.Header{"If-Unmodified-Since": {date0}}, Request{IfUnmodifiedSince: t0}, false},
		{"if_modified_since [RFC9110 13.1.3]", http.Header{"If-Modified-Since": {date0}}, Request{IfModifiedSince: t0}, false},
		{"if_modified_since_rfc850 [RFC9110 5.6.7]", http.Header{"If-Modified-Since": {"Tuesday, 02-Jan-24 03:04:05 GMT"}},
			Request{IfModifiedSince: t0}, false},
		{"if_modified_since_asctime [RFC9110 5.6.7]", http.Header{"If-Modified-Since": {"Tue Jan  2 03:04:05 2024"}},
			Request{IfModifiedSince: t0}, false},
		{"if_modified_since_invalid_ignored [RFC9110 13.1.3]", http.Header{"If-Modified-Since": {"yesterday"}}, Request{}, false},
		{"if_unmodified_since_list_ignored [RFC9110 13.1.4]", http.Header{"If-Unmodified-Since": {date0 + ", " + date0}}, Request{}, false},
		{"if_unmodified_since_two_lines_ignored [RFC9110 13.1.4]", http.Header{"If-Unmodified-Since": {date0, date0}}, Request{}, false},
		{"if_header [RFC4918 10.4]", http.Header{"If": {"(<urn:uuid:x>)"}},
			Request{If: &IfHeader{Lists: []List{{Conditions: []Condition{{Token: "urn:uuid:x"}}}}}}, false},
		{"if_header_lines_joined [RFC4918 10.4.2]", http.Header{"If": {"(<urn:uuid:x>)", `(["e"])`}},
			Request{If: &IfHeader{Lists: []List{
				{Conditions: []Condition{{Token: "urn:uuid:x"}}},
				{Conditions: []Condition{{ETag: `"e"`}}},
			}}}, false},
		{"if_header_lines_mixed [RFC4918 10.4.2]", http.Header{"If": {"(<urn:uuid:x>)", `</a> (["e"])`}}, Request{}, true},
		{"if_header_malformed [RFC4918 10.4.2]", http.Header{"If": {"()"}}, Request{}, true},
		{"if_header_empty [RFC4918 10.4.2]", http.Header{"If": {""}}, Request{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.h)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Parse() error = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if !got.IfModifiedSince.Equal(tt.want.IfModifiedSince) || !got.IfUnmodifiedSince.Equal(tt.want.IfUnmodifiedSince) {
				t.Errorf("dates = %v, %v; want %v, %v", got.IfModifiedSince, got.IfUnmodifiedSince,
					tt.want.IfModifiedSince, tt.want.IfUnmodifiedSince)
			}
			got.IfModifiedSince, got.IfUnmodifiedSince = time.Time{}, time.Time{}
			tt.want.IfModifiedSince, tt.want.IfUnmodifiedSince = time.Time{}, time.Time{}
			// DeepEqual also tells a nil tag list (header absent) from an empty one.
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse() = %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseYearOneIsPresent(t *testing.T) {
	// "Mon, 01 Jan 0001 00:00:00 GMT" parses to the zero Time; it must not read as absent.
	q, err := Parse(http.Header{"If-Unmodified-Since": {"Mon, 01 Jan 0001 00:00:00 GMT"}})
	if err != nil {
		t.Fatal(err)
	}
	if q.IfUnmodifiedSince.IsZero() {
		t.Fatal("year-1 date read as absent")
	}
	if got := q.Check(http.MethodPut, State{Exists: true, ETag: `"a"`, ModTime: t0}); got != Fail {
		t.Errorf("Check = %v, want Fail", got)
	}
}

func TestParseETagList(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // nil: error
	}{
		{"star [RFC9110 13.1.1]", "*", []string{"*"}},
		{"one [RFC9110 8.8.3]", `"x"`, []string{`"x"`}},
		{"weak [RFC9110 8.8.3]", `W/"x"`, []string{`W/"x"`}},
		{"tabs [RFC9110 5.6.3]", "\t\"x\"\t,\t\"y\"\t", []string{`"x"`, `"y"`}},
		{"backslash_is_etagc [RFC9110 8.8.3]", `"a\"`, []string{`"a\"`}},
		{"empty [RFC9110 5.6.1]", "", []string{}},
		{"only_commas [RFC9110 5.6.1.2]", " , ,", []string{}},
		{"ctl [RFC9110 8.8.3]", "\"a\x01\"", nil},
		{"del [RFC9110 8.8.3]", "\"a\x7f\"", nil},
		{"weak_no_quote [RFC9110 8.8.3]", "W/x", nil},
		{"weak_alone [RFC9110 8.8.3]", "W/", nil},
		{"quote_alone [RFC9110 8.8.3]", `"`, nil},
		{"trailing_garbage [RFC9110 8.8.3]", `"a"x`, nil},
		{"star_trailing [RFC9110 13.1.1]", `*x`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseETagList(tt.in)
			if tt.want == nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseETagList(%q) = %q, %v; want ErrMalformed", tt.in, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseETagList(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// Resources used by the Check and Cond matrices.
var (
	existing = State{Exists: true, ETag: `"v1"`, ModTime: t0.Add(500 * time.Millisecond)}
	missing  = State{}
	noDates  = State{Exists: true, ETag: `"v1"`}
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		h      http.Header
		method string
		cur    State
		want   Outcome
	}{
		{"no_conditions [RFC9110 13.2.2]", hdr(), "PUT", existing, Pass},

		// Step 1: If-Match.
		{"if_match_star_exists [RFC9110 13.1.1]", hdr("If-Match", "*"), "PUT", existing, Pass},
		{"if_match_star_missing [RFC9110 13.1.1]", hdr("If-Match", "*"), "PUT", missing, Fail},
		{"if_match_star_missing_get [RFC9110 13.2.2]", hdr("If-Match", "*"), "GET", missing, Fail},
		{"if_match_tag_matches [RFC9110 13.1.1]", hdr("If-Match", `"v0", "v1"`), "PUT", existing, Pass},
		{"if_match_tag_differs [RFC9110 13.1.1]", hdr("If-Match", `"v0"`), "PUT", existing, Fail},
		{"if_match_tag_differs_get_412 [RFC9110 13.2.2]", hdr("If-Match", `"v0"`), "GET", existing, Fail},
		{"if_match_tag_missing [RFC9110 13.1.1]", hdr("If-Match", `"v1"`), "PUT", missing, Fail},
		{"if_match_weak_never_matches [RFC9110 13.1.1]", hdr("If-Match", `W/"v1"`), "PUT", existing, Fail},
		{"if_match_empty_list [RFC9110 13.1.1]", hdr("If-Match", ""), "PUT", existing, Fail},
		{"if_match_no_etag_store [RFC9110 8.8.3.2]", hdr("If-Match", `""`), "PUT", State{Exists: true}, Fail},
		{"if_match_fails_if_none_match_passes [RFC9110 13.2.2]",
			hdr("If-Match", `"v0"`, "If-None-Match", `"v0"`), "PUT", existing, Fail},
		{"if_match_fails_get_if_none_match_fails [RFC9110 13.2.2]",
			hdr("If-Match", `"v0"`, "If-None-Match", `"v1"`), "GET", existing, Fail},

		// Step 2: If-Unmodified-Since, only without If-Match.
		{"ius_not_modified [RFC9110 13.1.4]", hdr("If-Unmodified-Since", after), "PUT", existing, Pass},
		{"ius_same_second [RFC9110 13.1.4]", hdr("If-Unmodified-Since", date0), "PUT", existing, Pass},
		{"ius_modified [RFC9110 13.1.4]", hdr("If-Unmodified-Since", before), "PUT", existing, Fail},
		{"ius_modified_get_412 [RFC9110 13.2.2]", hdr("If-Unmodified-Since", before), "GET", existing, Fail},
		{"ius_ignored_with_if_match [RFC9110 13.2.2]",
			hdr("If-Match", `"v1"`, "If-Unmodified-Since", before), "PUT", existing, Pass},
		{"ius_ignored_with_if_match_star [RFC9110 13.2.2]",
			hdr("If-Match", "*", "If-Unmodified-Since", before), "PUT", existing, Pass},
		{"ius_invalid_ignored [RFC9110 13.1.4]", hdr("If-Unmodified-Since", "garbage"), "PUT", existing, Pass},
		{"ius_missing_resource_ignored [RFC9110 13.1.4]", hdr("If-Unmodified-Since", before), "PUT", missing, Pass},
		{"ius_no_modtime_ignored [RFC9110 13.1.4]", hdr("If-Unmodified-Since", before), "PUT", noDates, Pass},
		{"ius_fails_before_inm_304 [RFC9110 13.2.2]",
			hdr("If-Unmodified-Since", before, "If-None-Match", `"v1"`), "GET", existing, Fail},

		// Step 3: If-None-Match.
		{"inm_star_missing [RFC9110 13.1.2]", hdr("If-None-Match", "*"), "PUT", missing, Pass},
		{"inm_star_exists_put [RFC9110 13.1.2]", hdr("If-None-Match", "*"), "PUT", existing, Fail},
		{"inm_star_exists_get [RFC9110 13.2.2]", hdr("If-None-Match", "*"), "GET", existing, NotModified},
		{"inm_tag_matches_get [RFC9110 13.2.2]", hdr("If-None-Match", `"v1"`), "GET", existing, NotModified},
		{"inm_tag_matches_head [RFC9110 13.2.2]", hdr("If-None-Match", `"v1"`), "HEAD", existing, NotModified},
		{"inm_tag_matches_put [RFC9110 13.2.2]", hdr("If-None-Match", `"v1"`), "PUT", existing, Fail},
		{"inm_tag_matches_propfind [RFC9110 13.2.2]", hdr("If-None-Match", `"v1"`), "PROPFIND", existing, Fail},
		{"inm_weak_comparison [RFC9110 13.1.2]", hdr("If-None-Match", `W/"v1"`), "GET", existing, NotModified},
		{"inm_weak_comparison_put [RFC9110 13.1.2]", hdr("If-None-Match", `W/"v1"`), "PUT", existing, Fail},
		{"inm_tag_differs [RFC9110 13.1.2]", hdr("If-None-Match", `"v0"`), "PUT", existing, Pass},
		{"inm_tag_missing [RFC9110 13.1.2]", hdr("If-None-Match", `"v1"`), "PUT", missing, Pass},
		{"inm_empty_list [RFC9110 13.1.2]", hdr("If-None-Match", ""), "GET", existing, Pass},
		{"if_match_passes_inm_fails_get [RFC9110 13.2.2]",
			hdr("If-Match", `"v1"`, "If-None-Match", `"v1"`), "GET", existing, NotModified},
		{"ius_passes_inm_fails_put [RFC9110 13.2.2]",
			hdr("If-Unmodified-Since", after, "If-None-Match", "*"), "PUT", existing, Fail},

		// Step 4: If-Modified-Since, GET/HEAD only and only without If-None-Match.
		{"ims_not_modified_get [RFC9110 13.1.3]", hdr("If-Modified-Since", date0), "GET", existing, NotModified},
		{"ims_not_modified_head [RFC9110 13.1.3]", hdr("If-Modified-Since", after), "HEAD", existing, NotModified},
		{"ims_modified_get [RFC9110 13.1.3]", hdr("If-Modified-Since", before), "GET", existing, Pass},
		{"ims_ignored_on_put [RFC9110 13.1.3]", hdr("If-Modified-Since", after), "PUT", existing, Pass},
		{"ims_ignored_on_propfind [RFC9110 13.1.3]", hdr("If-Modified-Since", after), "PROPFIND", existing, Pass},
		{"ims_ignored_with_inm [RFC9110 13.2.2]",
			hdr("If-None-Match", `"v0"`, "If-Modified-Since", after), "GET", existing, Pass},
		{"ims_invalid_ignored [RFC9110 13.1.3]", hdr("If-Modified-Since", "soon"), "GET", existing, Pass},
		{"ims_no_modtime_ignored [RFC9110 13.1.3]", hdr("If-Modified-Since", after), "GET", noDates, Pass},

		// Methods that select no representation ignore preconditions.
		{"options_ignores [RFC9110 13.2.1]", hdr("If-Match", `"v0"`), "OPTIONS", existing, Pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.h)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Check(tt.method, tt.cur); got != tt.want {
				t.Errorf("Check(%s) = %v, want %v", tt.method, got, tt.want)
			}
		})
	}
}

func TestCond(t *testing.T) {
	tests := []struct {
		name   string
		h      http.Header
		cur    State
		ifETag string
		want   backend.Cond
	}{
		{"nothing [RFC9110 13.2.2]", hdr(), existing, "", backend.Cond{}},
		{"ims_only [RFC9110 13.1.3]", hdr("If-Modified-Since", before), existing, "", backend.Cond{}},
		{"if_match_star [RFC9110 13.1.1]", hdr("If-Match", "*"), existing, "", backend.Cond{IfMatch: "*"}},
		{"if_match_tags [RFC9110 13.1.1]", hdr("If-Match", `"v0", "v1"`), existing, "", backend.Cond{IfMatch: `"v1"`}},
		{"inm_star [RFC9110 13.1.2]", hdr("If-None-Match", "*"), missing, "", backend.Cond{IfNoneMatch: true}},
		{"inm_tags_exists [RFC9110 13.1.2]", hdr("If-None-Match", `"v0"`), existing, "", backend.Cond{IfMatch: `"v1"`}},
		{"inm_tags_missing [RFC9110 13.1.2]", hdr("If-None-Match", `"v0"`), missing, "", backend.Cond{IfNoneMatch: true}},
		{"ius_exists [RFC9110 13.1.4]", hdr("If-Unmodified-Since", after), existing, "", backend.Cond{IfMatch: `"v1"`}},
		{"ius_missing [RFC9110 13.1.4]", hdr("If-Unmodified-Since", after), missing, "", backend.Cond{IfNoneMatch: true}},
		{"ius_no_modtime_unused [RFC9110 13.1.4]", hdr("If-Unmodified-Since", after), noDates, "", backend.Cond{}},
		{"ius_ignored_with_if_match_star [RFC9110 13.2.2]",
			hdr("If-Match", "*", "If-Unmodified-Since", after), existing, "", backend.Cond{IfMatch: "*"}},
		{"if_match_star_and_inm_tags [RFC9110 13.2.2]",
			hdr("If-Match", "*", "If-None-Match", `"v0"`), existing, "", backend.Cond{IfMatch: `"v1"`}},
		{"if_header_etag [RFC4918 10.4]", hdr(), existing, `"v1"`, backend.Cond{IfMatch: `"v1"`}},
		{"if_header_etag_beats_star [RFC4918 10.4]", hdr("If-Match", "*"), existing, `"v1"`, backend.Cond{IfMatch: `"v1"`}},
		{"no_etag_store_pins_existence [RFC9110 13.1.2]", hdr("If-None-Match", `"v0"`), State{Exists: true}, "",
			backend.Cond{IfMatch: "*"}},
		{"contradiction_unsatisfiable [RFC9110 13.2.2]", hdr("If-Match", "*", "If-None-Match", "*"), missing, "",
			backend.Cond{IfMatch: "*", IfNoneMatch: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.h)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Cond(tt.cur, tt.ifETag); got != tt.want {
				t.Errorf("Cond() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want []string
	}{
		{"absent [RFC4918 10.4]", hdr(), nil},
		{"one [RFC4918 10.4]", hdr("If", "(<urn:uuid:a>)"), []string{"urn:uuid:a"}},
		{"not_and_dedup [RFC4918 10.4]", hdr("If", `(<urn:uuid:a> ["e"]) (Not <urn:uuid:b>) (<urn:uuid:a>)`),
			[]string{"urn:uuid:a", "urn:uuid:b"}},
		{"tagged_dedup_order [RFC4918 7.5]", hdr("If", `</x> (<urn:uuid:b> ["e"]) (Not <urn:uuid:a>) </y> (<urn:uuid:b>) (<DAV:no-lock>)`),
			[]string{"urn:uuid:b", "urn:uuid:a"}},
		{"no_lock_only [RFC4918 10.4.8]", hdr("If", "(Not <DAV:no-lock>)"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.h)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Tokens(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Tokens() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTokensManyDedup(t *testing.T) {
	// Past 16 distinct tokens Tokens switches to a map; the result must not change.
	s := ""
	var want []string
	for i := 0; i < 40; i++ {
		tok := "urn:uuid:" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		want = append(want, tok)
		s += "(<" + tok + ">) (Not <" + tok + ">) "
	}
	q, err := Parse(hdr("If", s+"(<urn:uuid:aa>)"))
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Tokens(); !reflect.DeepEqual(got, want) {
		t.Errorf("Tokens() = %q\nwant %q", got, want)
	}
}

func TestParseNoConditionsAllocatesNothing(t *testing.T) {
	h := http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"3"}}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Parse(h); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Parse without conditional headers: %v allocs, want 0", allocs)
	}
}

func TestCheckAllocatesNothing(t *testing.T) {
	q, err := Parse(hdr("If-Match", `"v0", "v1"`, "If-None-Match", `W/"v2"`, "If-Unmodified-Since", after))
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		_ = q.Check(http.MethodPut, existing)
		_ = q.Cond(existing, "")
	})
	if allocs != 0 {
		t.Errorf("Check+Cond: %v allocs, want 0", allocs)
	}
}
