package precond

import (
	"net/http"
	"testing"
)

func BenchmarkParseNoConditions(b *testing.B) {
	h := http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"3"}, "Depth": {"0"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	h := http.Header{
		"If-Match":            {`"v1"`},
		"If-Unmodified-Since": {date0},
		"If":                  {`<http://127.0.0.1:8080/litmus/lockme> (<urn:uuid:2b5c5b8c-1234-4567-89ab-0123456789ab> ["v1"])`},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	q, err := Parse(http.Header{
		"If-Match":          {`"v0", "v1"`},
		"If-None-Match":     {`W/"v2"`},
		"If-Modified-Since": {before},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if q.Check(http.MethodPut, existing) != Pass {
			b.Fatal("not Pass")
		}
		_ = q.Cond(existing, "")
	}
}

func BenchmarkParseIf(b *testing.B) {
	const s = `(<urn:uuid:2b5c5b8c-1234-4567-89ab-0123456789ab> ["v1"]) (Not <DAV:no-lock> ["v1"])`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseIf(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEval(b *testing.B) {
	h, err := ParseIf(`(<urn:uuid:bad>) (<urn:uuid:L> ["v1"])`)
	if err != nil {
		b.Fatal(err)
	}
	tg := Target{Exists: true, ETag: `"v1"`, HasLock: func(t string) bool { return t == "urn:uuid:L" }}
	resolve := func(string) Target { return tg }
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := h.Eval(resolve); !ok {
			b.Fatal("false")
		}
	}
}
