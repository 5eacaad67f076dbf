package davxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// golden compares got with testdata/name.golden, and checks that got is well-formed and
// namespace-well-formed XML, both with encoding/xml and with our own strict parser.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	checkWellFormed(t, got)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// checkWellFormed fails t unless doc is well-formed and namespace-well-formed XML.
func checkWellFormed(t *testing.T, doc []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, doc)
		}
	}
	if _, err := parse(bytes.NewReader(doc)); err != nil {
		t.Fatalf("not namespace-well-formed: %v\n%s", err, doc)
	}
}

func TestMultistatusGolden(t *testing.T) {
	patches, err := ReadProppatch(strings.NewReader(proppatchCases[9].body)) // nested second namespace
	if err != nil {
		t.Fatal(err)
	}
	dead := patches[0].Prop

	var buf bytes.Buffer
	m := NewMultistatus(&buf)
	err = m.Response("/dir/a%20b&amp/", []Propstat{
		{Status: 200, Props: []Property{
			{Name: davName("resourcetype"), InnerXML: []byte("<D:collection/>")},
			{Name: davName("getlastmodified"), Text: "Mon, 02 Jan 2006 15:04:05 GMT"},
			{Name: davName("getetag"), Text: `"5f-1"`},
			{Name: davName("displayname"), Text: "Tom & Jerry <draft>\r\x01\uFFFF"},
			{Name: dead.Name, InnerXML: dead.InnerXML},
			{Name: xml.Name{Local: "nonamespace"}, Text: "randomvalue"},
			{Name: xml.Name{Space: "urn:x", Local: "title"}, Lang: "de-CH", Text: "Grüezi"},
			{Name: xml.Name{Space: litmusNS, Local: "high-unicode"}, InnerXML: []byte("\U00010000")},
			{Name: davName("lockdiscovery"), InnerXML: LockDiscovery(nil)},
		}},
		{Status: 404, Props: []Property{{Name: xml.Name{Space: "urn:x", Local: "missing"}}}},
		{Status: 403, Props: []Property{{Name: davName("getetag")}},
			Error: "<D:cannot-modify-protected-property/>", Description: "getetag is live & protected"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Status("/dir/locked", 423, "<D:lock-token-submitted><D:href>/dir/locked</D:href></D:lock-token-submitted>"); err != nil {
		t.Fatal(err)
	}
	if err := m.Status("/dir/gone", 404, ""); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	golden(t, "multistatus", buf.Bytes())

	// The dead property's value must come out with the infoset it went in with.
	want, err := originalValues(proppatchCases[9].body)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("dead property not found: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name == dead.Name {
			got, err := canonContent(d)
			if err != nil {
				t.Fatal(err)
			}
			if got != want[0] {
				t.Errorf("dead property infoset after PROPFIND:\ngot  %s\nwant %s", got, want[0])
			}
			break
		}
	}
}

func TestMultistatusEmpty(t *testing.T) {
	var buf bytes.Buffer
	m := NewMultistatus(&buf)
	if buf.Len() != 0 {
		t.Fatal("NewMultistatus wrote before the first response")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	golden(t, "multistatus_empty", buf.Bytes())
	if err := m.Response("/a", nil); err == nil {
		t.Error("Response after Close succeeded")
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(b []byte) (int, error) {
	if f.n += len(b); f.n > 100 {
		return 0, errors.New("client went away")
	}
	return len(b), nil
}

func TestMultistatusWriteErrorIsSticky(t *testing.T) {
	m := NewMultistatus(&failWriter{})
	props := []Propstat{{Status: 200, Props: []Property{{Name: davName("getcontentlength"), Text: "1"}}}}
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = m.Response("/f"+strconv.Itoa(i), props)
	}
	if err == nil {
		err = m.Close()
	}
	if err == nil || m.Close() == nil || m.Status("/x", 200, "") == nil {
		t.Fatalf("write error not reported and kept: %v", err)
	}
}

func testLocks() []ActiveLock {
	return []ActiveLock{
		{Shared: true, Depth: 0, Owner: []byte(`<D:href xmlns:D="DAV:">mailto:ann@example.com</D:href>`),
			Timeout: 3599500 * time.Millisecond, Token: "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", Root: "/docs/a%20b&c.txt"},
		{Shared: true, Depth: 0, Owner: []byte("litmus test suite"), Timeout: 100 * 365 * 24 * time.Hour,
			Token: "urn:uuid:0", Root: "/docs/a%20b&c.txt"},
		{Depth: -1, Timeout: 0, Token: "urn:uuid:e71d4fae-5dec-22d6-fea5-00a0c91e6be4", Root: "/docs/"},
	}
}

func TestWriteLockResponseGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteLockResponse(&buf, testLocks()); err != nil {
		t.Fatal(err)
	}
	golden(t, "lockresponse", buf.Bytes())
}

func TestLockDiscoveryGolden(t *testing.T) {
	var buf bytes.Buffer
	m := NewMultistatus(&buf)
	m.Response("/docs/", []Propstat{{Status: 200, Props: []Property{
		{Name: davName("lockdiscovery"), InnerXML: LockDiscovery(testLocks()[2:])},
		{Name: davName("supportedlock"), InnerXML: []byte(SupportedLock)},
	}}})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	golden(t, "lockdiscovery", buf.Bytes())
}

func TestLockTimeout(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "Infinite"},
		{-time.Second, "Infinite"},
		{time.Nanosecond, "Second-1"}, // never Second-0 while the lock lives
		{time.Second, "Second-1"},
		{3600 * time.Second, "Second-3600"},
		{1 << 62, "Second-4294967295"}, // RFC 4918 §10.7 caps DAVTimeOutVal at 2^32-1
	} {
		got := string(LockDiscovery([]ActiveLock{{Timeout: tc.d}}))
		if !strings.Contains(got, "<D:timeout>"+tc.want+"</D:timeout>") {
			t.Errorf("timeout %v: %s, want %s", tc.d, got, tc.want)
		}
	}
}

func TestWriteErrorGolden(t *testing.T) {
	var buf bytes.Buffer
	err := WriteError(&buf, ErrorDoc{
		Conditions: []string{"<D:lock-token-submitted><D:href>/a</D:href></D:lock-token-submitted>"},
		Code:       "name_exists", Message: `"report.pdf" exists & you asked not to replace it`,
		Path: "/docs/report.pdf", ETag: `"5f-2"`, LastModified: "Mon, 02 Jan 2006 15:04:05 GMT",
		RequestID: "01HZ<x>",
		Extra:     map[string]string{"suggested-name": "report (1).pdf", "attempts": "3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "error", buf.Bytes())

	buf.Reset()
	if err := WriteError(&buf, ErrorDoc{Code: "bad_request"}); err != nil {
		t.Fatal(err)
	}
	golden(t, "error_minimal", buf.Bytes())
}

func TestWriteErrorRejectsBadExtraName(t *testing.T) {
	for _, k := range []string{"", "a b", "x:y", "1abc", "<a>", "xml-thing", "XmLfoo"} {
		var buf bytes.Buffer
		if err := WriteError(&buf, ErrorDoc{Extra: map[string]string{k: "v"}}); err == nil || buf.Len() != 0 {
			t.Errorf("extra key %q: err = %v, wrote %d bytes", k, err, buf.Len())
		}
	}
}

func TestAppendEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		{`a & b < c > d "e" 'f'`, `a &amp; b &lt; c &gt; d "e" 'f'`},
		{"tab\tnl\ncr\r", "tab\tnl\ncr&#xD;"},
		{"nul\x00bell\x07esc\x1b", "nul\uFFFDbell\uFFFDesc\uFFFD"},
		{"bad utf8 \xff\xc3", "bad utf8 \uFFFD\uFFFD"},
		{"nonchars \uFFFE\uFFFF ok \uFFFD", "nonchars \uFFFD\uFFFD ok \uFFFD"},
		{"high \U00010000 é ]]>", "high \U00010000 é ]]&gt;"},
	} {
		if got := string(AppendEscape([]byte("x"), tc.in)); got != "x"+tc.want {
			t.Errorf("AppendEscape(%q) = %q, want %q", tc.in, got[1:], tc.want)
		}
	}
	if got := string(appendEscape(nil, "a\"b\tc\nd\re&<", true)); got != "a&quot;b&#x9;c&#xA;d&#xD;e&amp;&lt;" {
		t.Errorf("attribute escape = %q", got)
	}
}

// TestEscapeRoundTrip: whatever the input, escaped text parses back to the input with
// the characters XML cannot carry replaced.
func TestEscapeRoundTrip(t *testing.T) {
	in := "x\r\n\ty & <z> \x00 \U0010FFFF \uFFFE"
	doc := "<a>" + string(AppendEscape(nil, in)) + "</a>"
	var v string
	if err := xml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	if want := "x\r\n\ty & <z> \uFFFD \U0010FFFF \uFFFD"; v != want {
		t.Errorf("round trip: %q, want %q", v, want)
	}
}

// BenchmarkMultistatus10k is a Depth 1 PROPFIND of a collection of 10,000 files, each
// with the six live properties a file listing carries.
func BenchmarkMultistatus10k(b *testing.B) {
	hrefs := make([]string, 10000)
	sizes := make([]string, len(hrefs))
	etags := make([]string, len(hrefs))
	for i := range hrefs {
		hrefs[i] = "/photos/2024/IMG_" + strconv.Itoa(100000+i) + ".jpg"
		sizes[i] = strconv.Itoa(1000000 + i*37)
		etags[i] = `"` + strconv.FormatInt(int64(i)*7919, 16) + `-1"`
	}
	props := make([]Property, 6)
	ps := []Propstat{{Status: 200, Props: props}}
	b.ReportAllocs()
	for b.Loop() {
		m := NewMultistatus(io.Discard)
		for i, h := range hrefs {
			props[0] = Property{Name: davName("resourcetype")}
			props[1] = Property{Name: davName("getcontentlength"), Text: sizes[i]}
			props[2] = Property{Name: davName("getlastmodified"), Text: "Mon, 02 Jan 2006 15:04:05 GMT"}
			props[3] = Property{Name: davName("getetag"), Text: etags[i]}
			props[4] = Property{Name: davName("getcontenttype"), Text: "image/jpeg"}
			props[5] = Property{Name: davName("displayname"), Text: h[len("/photos/2024/"):]}
			if err := m.Response(h, ps); err != nil {
				b.Fatal(err)
			}
		}
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
