package davxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
)

// addSeeds adds the table-test bodies to a fuzz target, beside the files in
// testdata/fuzz/<Name>; the large bound-testing bodies are left out to keep runs fast.
func addSeeds(f *testing.F, bodies ...string) {
	for _, b := range bodies {
		if len(b) <= 4096 {
			f.Add([]byte(b))
		}
	}
}

func allBodies() []string {
	var out []string
	for _, tc := range propfindCases {
		out = append(out, tc.body)
	}
	for _, tc := range proppatchCases {
		out = append(out, tc.body)
	}
	for _, tc := range lockCases {
		out = append(out, tc.body)
	}
	for _, tc := range badBodies {
		out = append(out, tc.body)
	}
	return out
}

func FuzzReadPropfind(f *testing.F) {
	addSeeds(f, allBodies()...)
	f.Fuzz(func(t *testing.T, body []byte) {
		pf, err := ReadPropfind(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrBadXML) {
				t.Fatalf("error does not wrap ErrBadXML: %v", err)
			}
			return
		}
		modes := 0
		for _, on := range []bool{pf.AllProp, pf.PropName, pf.Props != nil} {
			if on {
				modes++
			}
		}
		if modes != 1 {
			t.Fatalf("%d modes in %+v", modes, pf)
		}
		if pf.Include != nil && !pf.AllProp {
			t.Fatalf("include without allprop: %+v", pf)
		}
		// Every name must be writable back in a multistatus.
		var buf bytes.Buffer
		m := NewMultistatus(&buf)
		var props []Property
		for _, n := range append(pf.Props, pf.Include...) {
			props = append(props, Property{Name: n})
		}
		m.Response("/", []Propstat{{Status: 404, Props: props}})
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		checkWellFormed(t, buf.Bytes())
	})
}

func FuzzReadProppatch(f *testing.F) {
	addSeeds(f, allBodies()...)
	f.Fuzz(func(t *testing.T, body []byte) {
		patches, err := ReadProppatch(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrBadXML) {
				t.Fatalf("error does not wrap ErrBadXML: %v", err)
			}
			return
		}
		if len(patches) == 0 {
			t.Fatal("success with no patches")
		}
		for _, p := range patches {
			if p.Remove {
				continue
			}
			// The value must be well-formed under a property element, and reading it
			// back must give exactly the same value: serialisation is a fixed point.
			el := wrapLang(p.Prop.Name, p.Prop.Lang, p.Prop.InnerXML)
			checkWellFormed(t, []byte(el))
			again, err := ReadProppatch(strings.NewReader(`<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>` + el + `</D:prop></D:set></D:propertyupdate>`))
			if err != nil {
				t.Fatalf("re-reading %s: %v", el, err)
			}
			q := again[0].Prop
			if len(again) != 1 || q.Name != p.Prop.Name || q.Lang != p.Prop.Lang || !bytes.Equal(q.InnerXML, p.Prop.InnerXML) {
				t.Fatalf("value changed on re-reading:\nfirst  %v %q %q\nsecond %v %q %q", p.Prop.Name, p.Prop.Lang, p.Prop.InnerXML, q.Name, q.Lang, q.InnerXML)
			}
		}
		// And the whole set must make a well-formed multistatus.
		var buf bytes.Buffer
		m := NewMultistatus(&buf)
		var props []Property
		for _, p := range patches {
			props = append(props, Property{Name: p.Prop.Name, Lang: p.Prop.Lang, InnerXML: p.Prop.InnerXML})
		}
		m.Response("/", []Propstat{{Status: 200, Props: props}})
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		checkWellFormed(t, buf.Bytes())
	})
}

func FuzzReadLockInfo(f *testing.F) {
	addSeeds(f, allBodies()...)
	f.Fuzz(func(t *testing.T, body []byte) {
		li, ok, err := ReadLockInfo(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrBadXML) {
				t.Fatalf("error does not wrap ErrBadXML: %v", err)
			}
			return
		}
		if !ok {
			if li.Shared || li.Owner != nil {
				t.Fatalf("refresh with content: %+v", li)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteLockResponse(&buf, []ActiveLock{{Shared: li.Shared, Owner: li.Owner, Token: "urn:uuid:x", Root: "/"}}); err != nil {
			t.Fatal(err)
		}
		checkWellFormed(t, buf.Bytes())
		if li.Owner != nil {
			scope := "exclusive"
			if li.Shared {
				scope = "shared"
			}
			again, ok, err := ReadLockInfo(strings.NewReader(`<lockinfo xmlns="DAV:"><lockscope><` + scope + `/></lockscope><locktype><write/></locktype><owner>` + string(li.Owner) + `</owner></lockinfo>`))
			if err != nil || !ok || again.Shared != li.Shared || !bytes.Equal(again.Owner, li.Owner) {
				t.Fatalf("owner changed on re-reading: %q → %q, %v", li.Owner, again.Owner, err)
			}
		}
	})
}

// wrapLang is wrap with an xml:lang attribute when lang is set. A name in the XML
// namespace uses the predeclared xml prefix, as the encoder does.
func wrapLang(name xml.Name, lang string, inner []byte) string {
	if name.Space == nsXML {
		return "<xml:" + name.Local + langAttr(lang) + ">" + string(inner) + "</xml:" + name.Local + ">"
	}
	w := wrap(name, inner)
	i := strings.IndexByte(w, '>')
	return w[:i] + langAttr(lang) + w[i:]
}

func langAttr(lang string) string {
	if lang == "" {
		return ""
	}
	return ` xml:lang="` + string(appendEscape(nil, lang, true)) + `"`
}
