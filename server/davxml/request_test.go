package davxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"safedav/backend"
)

const (
	litmusNS = "http://example.com/neon/litmus/"
	xmlDecl  = `<?xml version="1.0" encoding="utf-8" ?>`
)

func davName(local string) xml.Name { return xml.Name{Space: nsDAV, Local: local} }

// propfindCases are valid PROPFIND bodies; the litmus ones are the bytes neon and litmus
// send (props.c, neon's ne_props.c).
var propfindCases = []struct {
	name string
	body string
	want Propfind
}{
	{"empty_body_is_allprop [RFC4918 9.1]", "", Propfind{AllProp: true}},
	{"blank_body_is_allprop [RFC4918 9.1]", " \r\n\t", Propfind{AllProp: true}},
	{"bom_only_is_allprop", "\ufeff\n", Propfind{AllProp: true}},
	{"litmus_propfind_d0",
		`<?xml version="1.0" encoding="utf-8"?>` + "\n" + `<propfind xmlns="DAV:"><prop>` + "\n" +
			`<getcontentlength xmlns="DAV:"/>` + "\n" + `<getlastmodified xmlns="DAV:"/>` + "\n" +
			`<displayname xmlns="DAV:"/>` + "\n" + `<resourcetype xmlns="DAV:"/>` + "\n" +
			`<foo xmlns="` + litmusNS + `"/>` + "\n" + `<bar xmlns="` + litmusNS + `"/>` + "\n" +
			`</prop></propfind>` + "\n",
		Propfind{Props: []xml.Name{davName("getcontentlength"), davName("getlastmodified"),
			davName("displayname"), davName("resourcetype"), {Space: litmusNS, Local: "foo"}, {Space: litmusNS, Local: "bar"}}}},
	{"allprop", xmlDecl + `<propfind xmlns="DAV:"><allprop/></propfind>`, Propfind{AllProp: true}},
	{"propname", `<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>`, Propfind{PropName: true}},
	{"allprop_include [RFC4918 9.1.6]",
		`<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:supported-live-property-set/><D:supported-report-set/></D:include></D:propfind>`,
		Propfind{AllProp: true, Include: []xml.Name{davName("supported-live-property-set"), davName("supported-report-set")}}},
	{"litmus_propextended_unknown_dav_element_ignored [RFC4918 17]",
		xmlDecl + `<propfind xmlns="DAV:"><foobar/><allprop/></propfind>`, Propfind{AllProp: true}},
	{"litmus_propwformed",
		xmlDecl + `<propfind xmlns='DAV:'><prop><valnspace xmlns='` + litmusNS + `'/></prop></propfind>`,
		Propfind{Props: []xml.Name{{Space: litmusNS, Local: "valnspace"}}}},
	{"litmus_propget_nonamespace",
		`<?xml version="1.0" encoding="utf-8"?>` + "\n" + `<propfind xmlns="DAV:"><prop>` + "\n" + `<nonamespace xmlns=""/>` + "\n" + `</prop></propfind>`,
		Propfind{Props: []xml.Name{{Local: "nonamespace"}}}},
	{"foreign_elements_ignored [RFC4918 17]",
		`<propfind xmlns="DAV:" xmlns:x="urn:x"><x:hint>ignored <deep/></x:hint><prop><getetag/><x:color/></prop></propfind>`,
		Propfind{Props: []xml.Name{davName("getetag"), {Space: "urn:x", Local: "color"}}}},
	{"empty_prop_names_nothing", `<propfind xmlns="DAV:"><prop/></propfind>`, Propfind{Props: []xml.Name{}}},
	{"bom_and_uppercase_utf8_declaration",
		"\ufeff" + `<?xml version="1.0" encoding="UTF-8"?><propfind xmlns="DAV:"><allprop/></propfind>`, Propfind{AllProp: true}},
	{"mixed_case_utf8_declaration",
		`<?xml version='1.0' encoding='Utf-8' standalone='yes'?><propfind xmlns="DAV:"><allprop/></propfind>`, Propfind{AllProp: true}},
	{"us_ascii_declaration",
		`<?xml version="1.0" encoding="US-ASCII"?><propfind xmlns="DAV:"><propname/></propfind>`, Propfind{PropName: true}},
	{"comments_pi_cdata_whitespace",
		"<!-- c --><?app x?>\n<propfind xmlns=\"DAV:\">\n  <!-- c -->\n  <prop><![CDATA[ ]]><getetag/></prop>\n</propfind>\n<!-- trailing -->\n",
		Propfind{Props: []xml.Name{davName("getetag")}}},
	{"default_namespace_redeclared_inside",
		`<a:propfind xmlns:a="DAV:" xmlns="urn:other"><a:prop><x/><a:getetag/></a:prop></a:propfind>`,
		Propfind{Props: []xml.Name{{Space: "urn:other", Local: "x"}, davName("getetag")}}},
	{"prop_name_content_ignored", `<propfind xmlns="DAV:"><prop><getetag>junk</getetag></prop></propfind>`,
		Propfind{Props: []xml.Name{davName("getetag")}}},
}

func TestReadPropfind(t *testing.T) {
	for _, tc := range propfindCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadPropfind(strings.NewReader(tc.body))
			if err != nil {
				t.Fatalf("ReadPropfind: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func nested(depth int) string {
	return `<propfind xmlns="DAV:"><prop><x xmlns="urn:x">` + strings.Repeat("<a>", depth-3) +
		strings.Repeat("</a>", depth-3) + `</x></prop></propfind>`
}

func manyElements(n int) string {
	return `<propfind xmlns="DAV:"><prop>` + strings.Repeat(`<e xmlns="urn:x"/>`, n-2) + `</prop></propfind>`
}

// badBodies are rejected by every reader, whatever the root it expects.
var badBodies = []struct{ name, body string }{
	{"litmus_propfind_invalid_not_well_formed", "<foo>"},
	{"litmus_propfind_invalid2_prefix_bound_to_empty [XMLNS 3]",
		`<D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>`},
	{"prefix_bound_to_empty_default_form",
		`<propfind xmlns="DAV:"><prop><bar:foo xmlns:bar=""/></prop></propfind>`},
	{"not_xml", "hello, world"},
	{"json", `{"propfind": "allprop"}`},
	{"unbound_prefix", `<x:propfind xmlns="DAV:"><allprop/></x:propfind>`},
	{"unbound_prefix_in_attribute", `<propfind xmlns="DAV:" x:a="1"><allprop/></propfind>`},
	{"mismatched_end_tag", `<propfind xmlns="DAV:"><allprop></propfind>`},
	{"unclosed_root", `<propfind xmlns="DAV:"><allprop/>`},
	{"end_tag_prefix_differs", `<D:propfind xmlns:D="DAV:" xmlns:E="DAV:"><D:allprop/></E:propfind>`},
	{"two_roots", `<propfind xmlns="DAV:"><allprop/></propfind><propfind xmlns="DAV:"><allprop/></propfind>`},
	{"text_after_root", `<propfind xmlns="DAV:"><allprop/></propfind>trailing`},
	{"text_before_root", `leading<propfind xmlns="DAV:"><allprop/></propfind>`},
	{"duplicate_attribute [XML 3.1]", `<propfind xmlns="DAV:" a="1" a="2"><allprop/></propfind>`},
	{"duplicate_attribute_via_namespaces [XMLNS 6.3]",
		`<propfind xmlns="DAV:" xmlns:a="urn:u" xmlns:b="urn:u" a:x="1" b:x="2"><allprop/></propfind>`},
	{"duplicate_namespace_declaration", `<propfind xmlns="DAV:" xmlns:a="urn:u" xmlns:a="urn:v"><allprop/></propfind>`},
	{"xml_prefix_rebound", `<propfind xmlns="DAV:" xmlns:xml="urn:x"><allprop/></propfind>`},
	{"xmlns_prefix_declared", `<propfind xmlns="DAV:" xmlns:xmlns="urn:x"><allprop/></propfind>`},
	{"xml_namespace_bound_to_other_prefix", `<propfind xmlns="DAV:" xmlns:p="http://www.w3.org/XML/1998/namespace"><allprop/></propfind>`},
	{"xml_namespace_as_default", `<propfind xmlns="http://www.w3.org/XML/1998/namespace"><allprop/></propfind>`},
	{"element_with_xmlns_prefix", `<xmlns:propfind xmlns="DAV:"/>`},
	{"doctype [XXE]", `<!DOCTYPE propfind SYSTEM "file:///etc/passwd"><propfind xmlns="DAV:"><allprop/></propfind>`},
	{"doctype_internal_entity", `<!DOCTYPE propfind [<!ENTITY x "y">]><propfind xmlns="DAV:"><prop><a xmlns="u">&x;</a></prop></propfind>`},
	{"billion_laughs", `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><propfind xmlns="DAV:"><prop><a xmlns="u">&lol2;</a></prop></propfind>`},
	{"undefined_entity", `<propfind xmlns="DAV:"><prop><a xmlns="u">&nbsp;</a></prop></propfind>`},
	{"latin1_declaration", `<?xml version="1.0" encoding="ISO-8859-1"?><propfind xmlns="DAV:"><allprop/></propfind>`},
	{"utf16_declaration", `<?xml version="1.0" encoding="UTF-16"?><propfind xmlns="DAV:"><allprop/></propfind>`},
	{"spaced_latin1_declaration", `<?xml version="1.0" encoding = 'latin1' ?><propfind xmlns="DAV:"><allprop/></propfind>`},
	{"xml_version_1_1", `<?xml version="1.1"?><propfind xmlns="DAV:"><allprop/></propfind>`},
	{"misplaced_xml_declaration", `<propfind xmlns="DAV:"><?xml version="1.0"?><allprop/></propfind>`},
	{"uppercase_xml_pi", `<?XML version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>`},
	{"non_ascii_in_us_ascii_body", `<?xml version="1.0" encoding="us-ascii"?><propfind xmlns="DAV:"><prop><é xmlns="u"/></prop></propfind>`},
	{"invalid_utf8", "<propfind xmlns=\"DAV:\"><prop><a xmlns=\"u\">\xff\xfe</a></prop></propfind>"},
	{"utf16_bom", "\xff\xfe<\x00p\x00/\x00>\x00"},
	{"nul_char_reference", `<propfind xmlns="DAV:"><prop><a xmlns="u">&#0;</a></prop></propfind>`},
	{"control_char", "<propfind xmlns=\"DAV:\"><prop><a xmlns=\"u\">\x01</a></prop></propfind>"},
	{"too_deep", nested(MaxDepth + 1)},
	{"too_many_elements", manyElements(MaxElements + 1)},
	{"colon_in_local_name", `<propfind xmlns="DAV:"><prop><a:b:c xmlns:a="u"/></prop></propfind>`},
	{"empty_prefix", `<propfind xmlns="DAV:"><prop><:b/></prop></propfind>`},
	{"only_comment", `<!-- nothing -->`},
}

func TestBadBodies(t *testing.T) {
	// Most bodies have a propfind root, which the other readers would reject for that
	// alone; each reader gets the body with its own root name instead.
	as := func(body, root string) io.Reader {
		return strings.NewReader(strings.ReplaceAll(body, "propfind", root))
	}
	for _, tc := range badBodies {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parse(strings.NewReader(tc.body)); !errors.Is(err, ErrBadXML) {
				t.Errorf("parse: err = %v, want ErrBadXML", err)
			}
			if _, err := ReadPropfind(strings.NewReader(tc.body)); !errors.Is(err, ErrBadXML) {
				t.Errorf("ReadPropfind: err = %v, want ErrBadXML", err)
			}
			if _, err := ReadProppatch(as(tc.body, "propertyupdate")); !errors.Is(err, ErrBadXML) {
				t.Errorf("ReadProppatch: err = %v, want ErrBadXML", err)
			}
			if _, _, err := ReadLockInfo(as(tc.body, "lockinfo")); !errors.Is(err, ErrBadXML) {
				t.Errorf("ReadLockInfo: err = %v, want ErrBadXML", err)
			}
		})
	}
}

func TestBoundsAccepted(t *testing.T) {
	// The limits are inclusive: exactly MaxDepth and MaxElements pass.
	for name, body := range map[string]string{"depth": nested(MaxDepth), "elements": manyElements(MaxElements)} {
		if _, err := ReadPropfind(strings.NewReader(body)); err != nil {
			t.Errorf("%s at the limit: %v", name, err)
		}
	}
}

func TestReadPropfindInvalid(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"wrong_root", `<propertyupdate xmlns="DAV:"><set><prop><a xmlns="u"/></prop></set></propertyupdate>`},
		{"root_not_in_dav", `<propfind><allprop/></propfind>`},
		{"root_in_other_namespace", `<propfind xmlns="urn:not-dav"><allprop/></propfind>`},
		{"none_of_allprop_propname_prop [RFC4918 14.20]", `<propfind xmlns="DAV:"/>`},
		{"only_foreign_children", `<propfind xmlns="DAV:"><x:allprop xmlns:x="urn:x"/></propfind>`},
		{"allprop_and_prop", `<propfind xmlns="DAV:"><allprop/><prop><getetag/></prop></propfind>`},
		{"propname_and_prop", `<propfind xmlns="DAV:"><prop><getetag/></prop><propname/></propfind>`},
		{"allprop_and_propname", `<propfind xmlns="DAV:"><allprop/><propname/></propfind>`},
		{"two_allprop", `<propfind xmlns="DAV:"><allprop/><allprop/></propfind>`},
		{"two_prop", `<propfind xmlns="DAV:"><prop><getetag/></prop><prop><displayname/></prop></propfind>`},
		{"include_without_allprop [RFC4918 14.8]", `<propfind xmlns="DAV:"><propname/><include><getetag/></include></propfind>`},
		{"text_in_propfind", `<propfind xmlns="DAV:">junk<allprop/></propfind>`},
		{"text_in_prop", `<propfind xmlns="DAV:"><prop>junk<getetag/></prop></propfind>`},
		{"text_in_allprop", `<propfind xmlns="DAV:"><allprop>junk</allprop></propfind>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pf, err := ReadPropfind(strings.NewReader(tc.body))
			if !errors.Is(err, ErrBadXML) {
				t.Errorf("got %+v, %v; want ErrBadXML", pf, err)
			}
		})
	}
}

func TestReaderErrorIsWrapped(t *testing.T) {
	body := strings.NewReader(`<propfind xmlns="DAV:"><prop>` + strings.Repeat(`<a xmlns="u"/>`, 100) + `</prop></propfind>`)
	_, err := ReadPropfind(http.MaxBytesReader(nil, io.NopCloser(body), 64))
	var mbe *http.MaxBytesError
	if !errors.Is(err, ErrBadXML) || !errors.As(err, &mbe) {
		t.Fatalf("err = %v; want ErrBadXML wrapping *http.MaxBytesError", err)
	}
}

func setProp(space, local, inner string) backend.PropPatch {
	return backend.PropPatch{Prop: backend.Prop{Name: xml.Name{Space: space, Local: local}, InnerXML: []byte(inner)}}
}

func removeProp(space, local string) backend.PropPatch {
	return backend.PropPatch{Remove: true, Prop: backend.Prop{Name: xml.Name{Space: space, Local: local}}}
}

func withLang(p backend.PropPatch, lang string) backend.PropPatch {
	p.Prop.Lang = lang
	return p
}

// neonPatch builds a PROPPATCH body the way neon's ne_proppatch does (litmus propset,
// propdeletes, propreplace, propmanyns).
func neonPatch(ops ...[3]string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8" ?>` + "\n" + `<D:propertyupdate xmlns:D="DAV:">`)
	for _, op := range ops { // kind, namespace, name; value for set is "value-"+name
		fmt.Fprintf(&b, `<D:%s><D:prop><%s xmlns="%s">`, op[0], op[2], op[1])
		if op[0] == "set" {
			b.WriteString("value-" + op[2])
		}
		fmt.Fprintf(&b, "</%s></D:prop></D:%s>\n", op[2], op[0])
	}
	b.WriteString("</D:propertyupdate>\n")
	return b.String()
}

var proppatchCases = []struct {
	name string
	body string
	want []backend.PropPatch
}{
	{"litmus_propset_neon",
		neonPatch([3]string{"set", litmusNS, "prop0"}, [3]string{"set", litmusNS, "prop1"}),
		[]backend.PropPatch{setProp(litmusNS, "prop0", "value-prop0"), setProp(litmusNS, "prop1", "value-prop1")}},
	{"litmus_propdeletes_neon",
		neonPatch([3]string{"remove", litmusNS, "prop0"}, [3]string{"set", litmusNS, "prop5"}),
		[]backend.PropPatch{removeProp(litmusNS, "prop0"), setProp(litmusNS, "prop5", "value-prop5")}},
	{"litmus_propmanyns_neon",
		neonPatch([3]string{"set", "http://example.com/alpha", "somename"}, [3]string{"set", "http://example.com/beta", "somename"}),
		[]backend.PropPatch{setProp("http://example.com/alpha", "somename", "value-somename"), setProp("http://example.com/beta", "somename", "value-somename")}},
	{"litmus_propnullns",
		xmlDecl + `<propertyupdate xmlns="DAV:"><set><prop><nonamespace xmlns="">randomvalue</nonamespace></prop></set></propertyupdate>`,
		[]backend.PropPatch{setProp("", "nonamespace", "randomvalue")}},
	{"litmus_prophighunicode",
		xmlDecl + `<propertyupdate xmlns='DAV:'><set><prop><high-unicode xmlns='` + litmusNS + `'>&#65536;</high-unicode></prop></set></propertyupdate>`,
		[]backend.PropPatch{setProp(litmusNS, "high-unicode", "\U00010000")}},
	{"high_unicode_prefixed_hex_reference",
		`<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><e:high-unicode xmlns:e="` + litmusNS + `">&#x10000;</e:high-unicode></D:prop></D:set></D:propertyupdate>`,
		[]backend.PropPatch{setProp(litmusNS, "high-unicode", "\U00010000")}},
	{"litmus_propremoveset_document_order [RFC4918 9.2]",
		xmlDecl + `<propertyupdate xmlns='DAV:'>` +
			`<remove><prop><removeset xmlns='` + litmusNS + `'/></prop></remove>` +
			`<set><prop><removeset xmlns='` + litmusNS + `'>x</removeset></prop></set>` +
			`<set><prop><removeset xmlns='` + litmusNS + `'>y</removeset></prop></set>` +
			`</propertyupdate>`,
		[]backend.PropPatch{removeProp(litmusNS, "removeset"), setProp(litmusNS, "removeset", "x"), setProp(litmusNS, "removeset", "y")}},
	{"litmus_propsetremove_document_order [RFC4918 9.2]",
		xmlDecl + `<propertyupdate xmlns='DAV:'>` +
			`<set><prop><removeset xmlns='` + litmusNS + `'>x</removeset></prop></set>` +
			`<remove><prop><removeset xmlns='` + litmusNS + `'/></prop></remove>` +
			`</propertyupdate>`,
		[]backend.PropPatch{setProp(litmusNS, "removeset", "x"), removeProp(litmusNS, "removeset")}},
	{"litmus_propvalnspace",
		xmlDecl + `<propertyupdate xmlns='DAV:'><set><prop><t:valnspace xmlns:t='` + litmusNS + `'><foo xmlns='http://bar'/></t:valnspace></prop></set></propertyupdate>`,
		[]backend.PropPatch{setProp(litmusNS, "valnspace", `<foo xmlns="http://bar"/>`)}},
	{"nested_second_namespace_with_attributes [RFC4918 4.3]",
		`<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>` +
			`<x:author xmlns:x="urn:a" xmlns:y="urn:b"><y:name y:kind="full" plain='say "hi"'>Jane &amp; &lt;Co&gt;</y:name>` +
			`<y:empty/><z xmlns="urn:c">deep<y:deeper/><w xmlns="">none</w></z></x:author>` +
			`</D:prop></D:set></D:propertyupdate>`,
		[]backend.PropPatch{setProp("urn:a", "author",
			`<y:name xmlns:y="urn:b" y:kind="full" plain="say &quot;hi&quot;">Jane &amp; &lt;Co&gt;</y:name>`+
				`<y:empty xmlns:y="urn:b"/><z xmlns="urn:c">deep<y:deeper xmlns:y="urn:b"/><w xmlns="">none</w></z>`)}},
	{"value_inherits_default_namespace",
		`<propertyupdate xmlns="DAV:"><set><prop><x:p xmlns:x="urn:x"><href>/a</href><x:q><href>/b</href></x:q></x:p></prop></set></propertyupdate>`,
		[]backend.PropPatch{setProp("urn:x", "p", `<href xmlns="DAV:">/a</href><x:q xmlns:x="urn:x"><href xmlns="DAV:">/b</href></x:q>`)}},
	{"xml_lang_inherited_and_overridden [RFC4918 4.3]",
		`<D:propertyupdate xmlns:D="DAV:" xml:lang="en"><D:set><D:prop>` +
			`<x:a xmlns:x="urn:x">color</x:a><x:b xmlns:x="urn:x" xml:lang="de">Farbe</x:b>` +
			`<x:c xmlns:x="urn:x" xml:lang="">none</x:c><x:d xmlns:x="urn:x"><x:e xml:lang="fr">couleur</x:e></x:d>` +
			`</D:prop></D:set></D:propertyupdate>`,
		[]backend.PropPatch{withLang(setProp("urn:x", "a", "color"), "en"), withLang(setProp("urn:x", "b", "Farbe"), "de"),
			setProp("urn:x", "c", "none"), withLang(setProp("urn:x", "d", `<x:e xmlns:x="urn:x" xml:lang="fr">couleur</x:e>`), "en")}},
	{"empty_value",
		`<propertyupdate xmlns="DAV:"><set><prop><a xmlns="u"/><b xmlns="u"></b></prop></set></propertyupdate>`,
		[]backend.PropPatch{setProp("u", "a", ""), setProp("u", "b", "")}},
	{"whitespace_cdata_and_cr_preserved",
		"<propertyupdate xmlns=\"DAV:\"><set><prop><a xmlns=\"u\">  two\tspaces\n<![CDATA[<raw> & ]]>&#13;</a></prop></set></propertyupdate>",
		[]backend.PropPatch{setProp("u", "a", "  two\tspaces\n&lt;raw&gt; &amp; &#xD;")}},
	{"comments_dropped_from_value",
		`<propertyupdate xmlns="DAV:"><set><prop><a xmlns="u">x<!-- c -->y<?pi z?></a></prop></set></propertyupdate>`,
		[]backend.PropPatch{setProp("u", "a", "xy")}},
	{"property_in_dav_namespace",
		`<propertyupdate xmlns="DAV:"><set><prop><displayname>Name</displayname></prop></set></propertyupdate>`,
		[]backend.PropPatch{setProp(nsDAV, "displayname", "Name")}},
	{"attribute_whitespace_escaped",
		"<propertyupdate xmlns=\"DAV:\"><set><prop><a xmlns=\"u\"><b c=\"&#9;&#10;&#13;&lt;&amp;\"/></a></prop></set></propertyupdate>",
		[]backend.PropPatch{setProp("u", "a", `<b xmlns="u" c="&#x9;&#xA;&#xD;&lt;&amp;"/>`)}},
	{"unknown_and_foreign_children_ignored [RFC4918 17]",
		`<propertyupdate xmlns="DAV:" xmlns:x="urn:x"><x:note/><frob/><set><x:note/><prop><a xmlns="u">v</a></prop></set></propertyupdate>`,
		[]backend.PropPatch{setProp("u", "a", "v")}},
	{"remove_value_ignored",
		`<propertyupdate xmlns="DAV:"><remove><prop><a xmlns="u">ignored</a></prop></remove></propertyupdate>`,
		[]backend.PropPatch{removeProp("u", "a")}},
}

func TestReadProppatch(t *testing.T) {
	for _, tc := range proppatchCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadProppatch(strings.NewReader(tc.body))
			if err != nil {
				t.Fatalf("ReadProppatch: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d patches, want %d: %+v", len(got), len(tc.want), got)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Remove != w.Remove || g.Prop.Name != w.Prop.Name || g.Prop.Lang != w.Prop.Lang || string(g.Prop.InnerXML) != string(w.Prop.InnerXML) {
					t.Errorf("patch %d:\ngot  %v %v lang=%q %q\nwant %v %v lang=%q %q", i,
						g.Remove, g.Prop.Name, g.Prop.Lang, g.Prop.InnerXML, w.Remove, w.Prop.Name, w.Prop.Lang, w.Prop.InnerXML)
				}
			}
		})
	}
}

// TestProppatchRoundTrip checks the contract of backend.Prop.InnerXML: wrapped in a
// property element, under a parent whose default namespace and prefixes are hostile, a
// value parses to the same namespaced infoset as the original content.
func TestProppatchRoundTrip(t *testing.T) {
	for _, tc := range proppatchCases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := originalValues(tc.body)
			if err != nil {
				t.Fatalf("reference parse: %v", err)
			}
			got, err := ReadProppatch(strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			var sets []backend.Prop
			for _, p := range got {
				if !p.Remove {
					sets = append(sets, p.Prop)
				}
			}
			if len(sets) != len(want) {
				t.Fatalf("%d set values, reference has %d", len(sets), len(want))
			}
			for i, p := range sets {
				doc := `<t:outer xmlns="urn:hostile" xmlns:t="urn:hostile-t" xmlns:D="urn:not-dav" xmlns:x="urn:not-x">` +
					wrap(p.Name, p.InnerXML) + `</t:outer>`
				d := xml.NewDecoder(strings.NewReader(doc))
				if _, err := d.Token(); err != nil { // outer
					t.Fatal(err)
				}
				start, err := d.Token()
				if err != nil {
					t.Fatalf("value %d: %v in %s", i, err, doc)
				}
				if se := start.(xml.StartElement); se.Name != p.Name {
					t.Errorf("value %d: wrapper name %v, want %v", i, se.Name, p.Name)
				}
				c, err := canonContent(d)
				if err != nil {
					t.Fatalf("value %d: re-parse: %v in %s", i, err, doc)
				}
				if c != want[i] {
					t.Errorf("value %d infoset:\ngot  %s\nwant %s", i, c, want[i])
				}
				if _, err := parse(strings.NewReader(doc)); err != nil {
					t.Errorf("value %d: not namespace-well-formed: %v", i, err)
				}
			}
		})
	}
}

// wrap writes a property element around a value the way any consumer might.
func wrap(name xml.Name, inner []byte) string {
	if name.Space == "" {
		return "<" + name.Local + ` xmlns="">` + string(inner) + "</" + name.Local + ">"
	}
	return "<N:" + name.Local + ` xmlns:N="` + string(appendEscape(nil, name.Space, true)) + `">` + string(inner) + "</N:" + name.Local + ">"
}

// originalValues returns the infoset of each set property's content in a PROPPATCH body,
// computed with encoding/xml's own namespace handling as an independent reference.
func originalValues(body string) ([]string, error) {
	d := xml.NewDecoder(strings.NewReader(body))
	var path []string
	var out []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if slices.Equal(path, []string{"propertyupdate", "set", "prop"}) {
				c, err := canonContent(d)
				if err != nil {
					return nil, err
				}
				out = append(out, c)
				continue
			}
			if t.Name.Space == nsDAV {
				path = append(path, t.Name.Local)
			} else {
				path = append(path, "")
			}
		case xml.EndElement:
			path = path[:len(path)-1]
		}
	}
}

// canonContent renders the content of the element just started, through its end tag,
// as namespace URIs, local names, sorted attributes and merged text; prefixes, comments
// and processing instructions do not count.
func canonContent(d *xml.Decoder) (string, error) {
	var b, text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			fmt.Fprintf(&b, "%q", text.String())
			text.Reset()
		}
	}
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			flush()
			depth++
			fmt.Fprintf(&b, "<{%s}%s", t.Name.Space, t.Name.Local)
			var attrs []string
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				attrs = append(attrs, fmt.Sprintf(" {%s}%s=%q", a.Name.Space, a.Name.Local, a.Value))
			}
			slices.Sort(attrs)
			b.WriteString(strings.Join(attrs, "") + ">")
		case xml.EndElement:
			flush()
			if depth == 0 {
				return b.String(), nil
			}
			depth--
			b.WriteString("</>")
		case xml.CharData:
			text.Write(t)
		}
	}
}

func TestReadProppatchInvalid(t *testing.T) {
	bigNS := "urn:" + strings.Repeat("n", 1000)
	for _, tc := range []struct{ name, body string }{
		{"empty_body", ""},
		{"wrong_root", `<propfind xmlns="DAV:"><allprop/></propfind>`},
		{"no_set_or_remove [RFC4918 14.19]", `<propertyupdate xmlns="DAV:"/>`},
		{"only_unknown_children", `<propertyupdate xmlns="DAV:"><frob/></propertyupdate>`},
		{"set_without_prop [RFC4918 14.26]", `<propertyupdate xmlns="DAV:"><set/></propertyupdate>`},
		{"prop_without_property", `<propertyupdate xmlns="DAV:"><set><prop/></set></propertyupdate>`},
		{"remove_prop_without_property", `<propertyupdate xmlns="DAV:"><remove><prop>  </prop></remove></propertyupdate>`},
		{"text_in_prop", `<propertyupdate xmlns="DAV:"><set><prop>text<a xmlns="u"/></prop></set></propertyupdate>`},
		{"text_in_set", `<propertyupdate xmlns="DAV:"><set>text<prop><a xmlns="u"/></prop></set></propertyupdate>`},
		{"empty_prefix_in_value", `<propertyupdate xmlns="DAV:"><set><prop><a xmlns="u"><b:c xmlns:b=""/></a></prop></set></propertyupdate>`},
		{"value_too_large", `<propertyupdate xmlns="DAV:"><set><prop><a xmlns="u">` +
			strings.Repeat("x", MaxValueBytes+1) + `</a></prop></set></propertyupdate>`},
		{"values_too_large_together", `<propertyupdate xmlns="DAV:"><set><prop>` +
			strings.Repeat(`<a xmlns="u">`+strings.Repeat("x", 1<<16)+`</a>`, 17) + `</prop></set></propertyupdate>`},
		// Small body, large output: every element must redeclare the long namespace.
		{"declaration_amplification", `<propertyupdate xmlns="DAV:" xmlns:n="` + bigNS + `"><set><prop>` +
			strings.Repeat(`<n:a><n:b/></n:a>`, 2000) + `</prop></set></propertyupdate>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadProppatch(strings.NewReader(tc.body))
			if !errors.Is(err, ErrBadXML) {
				t.Errorf("got %+v, %v; want ErrBadXML", got, err)
			}
		})
	}
}

const rfcLockBody = `<?xml version="1.0" encoding="utf-8" ?>
<D:lockinfo xmlns:D='DAV:'>
  <D:lockscope><D:exclusive/></D:lockscope>
  <D:locktype><D:write/></D:locktype>
  <D:owner>
    <D:href>http://example.org/~ejw/contact.html</D:href>
  </D:owner>
</D:lockinfo>`

var lockCases = []struct {
	name   string
	body   string
	want   LockInfo
	wantOK bool
}{
	{"empty_body_is_refresh [RFC4918 9.10.2]", "", LockInfo{}, false},
	{"blank_body_is_refresh", "\r\n", LockInfo{}, false},
	{"litmus_neon_exclusive",
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<lockinfo xmlns='DAV:'>\n <lockscope><exclusive/></lockscope>\n<locktype><write/></locktype><owner>litmus test suite</owner>\n</lockinfo>\n",
		LockInfo{Owner: []byte("litmus test suite")}, true},
	{"litmus_neon_shared",
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<lockinfo xmlns='DAV:'>\n <lockscope><shared/></lockscope>\n<locktype><write/></locktype><owner>litmus test suite</owner>\n</lockinfo>\n",
		LockInfo{Shared: true, Owner: []byte("litmus test suite")}, true},
	{"rfc_example_owner_href [RFC4918 9.10.7]", rfcLockBody,
		LockInfo{Owner: []byte("\n    " + `<D:href xmlns:D="DAV:">http://example.org/~ejw/contact.html</D:href>` + "\n  ")}, true},
	{"no_owner", `<lockinfo xmlns="DAV:"><locktype><write/></locktype><lockscope><shared/></lockscope></lockinfo>`,
		LockInfo{Shared: true}, true},
	{"empty_owner", `<lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope><locktype><write/></locktype><owner/></lockinfo>`,
		LockInfo{Owner: []byte{}}, true},
	{"owner_foreign_markup", `<lockinfo xmlns="DAV:" xmlns:o="urn:owner"><lockscope><exclusive/></lockscope><locktype><write/></locktype><owner><o:name o:id="7">Ann &amp; Bob</o:name></owner></lockinfo>`,
		LockInfo{Owner: []byte(`<o:name xmlns:o="urn:owner" o:id="7">Ann &amp; Bob</o:name>`)}, true},
	{"extensions_ignored [RFC4918 17]", `<lockinfo xmlns="DAV:" xmlns:x="urn:x"><x:prio/><lockscope><exclusive/><x:scope/></lockscope><locktype><write/></locktype><frob/></lockinfo>`,
		LockInfo{}, true},
}

func TestReadLockInfo(t *testing.T) {
	for _, tc := range lockCases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ReadLockInfo(strings.NewReader(tc.body))
			if err != nil {
				t.Fatalf("ReadLockInfo: %v", err)
			}
			if ok != tc.wantOK || got.Shared != tc.want.Shared || !bytes.Equal(got.Owner, tc.want.Owner) || (got.Owner == nil) != (tc.want.Owner == nil) {
				t.Errorf("got %v %+v (owner %q), want %v %+v (owner %q)", ok, got, got.Owner, tc.wantOK, tc.want, tc.want.Owner)
			}
		})
	}
}

func TestReadLockInfoInvalid(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"wrong_root", `<propfind xmlns="DAV:"><allprop/></propfind>`},
		{"missing_lockscope [RFC4918 14.11]", `<lockinfo xmlns="DAV:"><locktype><write/></locktype></lockinfo>`},
		{"missing_locktype", `<lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope></lockinfo>`},
		{"empty_lockinfo", `<lockinfo xmlns="DAV:"/>`},
		{"empty_lockscope", `<lockinfo xmlns="DAV:"><lockscope/><locktype><write/></locktype></lockinfo>`},
		{"exclusive_and_shared", `<lockinfo xmlns="DAV:"><lockscope><exclusive/><shared/></lockscope><locktype><write/></locktype></lockinfo>`},
		{"foreign_scope_only", `<lockinfo xmlns="DAV:"><lockscope><x:mine xmlns:x="u"/></lockscope><locktype><write/></locktype></lockinfo>`},
		{"foreign_type_only", `<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><locktype><x:read xmlns:x="u"/></locktype></lockinfo>`},
		{"two_lockscopes", `<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><lockscope><shared/></lockscope><locktype><write/></locktype></lockinfo>`},
		{"two_owners", `<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><locktype><write/></locktype><owner>a</owner><owner>b</owner></lockinfo>`},
		{"text_in_lockinfo", `<lockinfo xmlns="DAV:">x<lockscope><shared/></lockscope><locktype><write/></locktype></lockinfo>`},
		{"owner_too_large", `<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><locktype><write/></locktype><owner>` + strings.Repeat("o", MaxValueBytes+1) + `</owner></lockinfo>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ReadLockInfo(strings.NewReader(tc.body))
			if !errors.Is(err, ErrBadXML) {
				t.Errorf("got %+v %v, %v; want ErrBadXML", got, ok, err)
			}
		})
	}
}

func BenchmarkReadPropfind(b *testing.B) {
	body := []byte(propfindCases[3].body) // litmus propfind_d0: six names in two namespaces
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ReadPropfind(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHostileShapesStayCheap feeds bodies built to trigger quadratic behaviour; each must
// finish quickly (the limits, not the algorithms, bound the work).
func TestHostileShapesStayCheap(t *testing.T) {
	var attrs strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&attrs, ` xmlns:p%d="urn:%d" p%d:a="v"`, i, i, i)
	}
	for _, tc := range []struct{ name, body string }{
		{"text_split_by_comments", `<propertyupdate xmlns="DAV:"><set><prop><a xmlns="u">` +
			strings.Repeat("a<!---->", 100000) + `</a></prop></set></propertyupdate>`},
		{"text_split_by_cdata", `<propertyupdate xmlns="DAV:"><set><prop><a xmlns="u">` +
			strings.Repeat("<![CDATA[a]]>", 60000) + `</a></prop></set></propertyupdate>`},
		{"many_prefixes_then_many_elements", `<propertyupdate xmlns="DAV:"><set><prop><a xmlns="u"><b` + attrs.String() + `>` +
			strings.Repeat("<p1:c/>", 5000) + `</b></a></prop></set></propertyupdate>`},
		{"many_plain_attributes", `<propertyupdate xmlns="DAV:"><set><prop><a xmlns="u"><b` +
			manyAttrs(9000) + `/></a></prop></set></propertyupdate>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := ReadProppatch(strings.NewReader(tc.body))
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v (err %v)", d, err)
			}
		})
	}
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " a%d=\"v\"", i)
	}
	return b.String()
}
