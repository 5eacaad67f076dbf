package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"safedav/backend"
)

const (
	// maxNameLen bounds a login name; Basic auth names are short and a huge one is
	// more likely a paste accident than a user.
	maxNameLen = 256
	// maxCost bounds the bcrypt cost accepted in the users file and by HashPassword.
	// Cost 16 already takes seconds per uncached login; a hash at cost 31 would make
	// each login take days and hold a request goroutine the whole time.
	maxCost = 16
	// bcryptLen is the length of every bcrypt hash in the modular crypt format:
	// "$2b$" + two cost digits + "$" + 22 salt + 31 hash characters.
	bcryptLen = 60
)

// errNoUsers is returned for a file that parses but defines nobody: almost always a
// mistake (an emptied or truncated file), and refusing it keeps the old set on Reload.
var errNoUsers = errors.New("auth: the users file defines no users")

// account is a User with the password hash, which stays inside this package so a
// logged or printed User never carries it.
type account struct {
	User
	hash []byte
}

// ParseUsers parses a users file in either of its two formats, told apart by content: a
// YAML document with a top-level "users:" list, or Apache htpasswd lines "name:hash".
// Only bcrypt hashes ($2a$, $2b$, $2y$) are accepted. It fails, naming the line and the
// user where it can and never echoing a password, on syntax errors, unknown keys,
// plain-text or non-bcrypt passwords, invalid or duplicate names, roots or rule paths
// that backend.CleanName refuses, unknown permissions, and files that define no users.
func ParseUsers(data []byte) ([]User, error) {
	accts, err := parseAccounts(data)
	if err != nil {
		return nil, err
	}
	users := make([]User, len(accts))
	for i := range accts {
		users[i] = accts[i].User
	}
	return users, nil
}

func parseAccounts(data []byte) ([]account, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // editors on Windows add a BOM
	var (
		accts []account
		err   error
	)
	if looksLikeYAML(data) {
		accts, err = parseYAML(data)
	} else {
		accts, err = parseHtpasswd(data)
	}
	if err != nil {
		return nil, err
	}
	if len(accts) == 0 {
		return nil, errNoUsers
	}
	return accts, nil
}

// looksLikeYAML decides the format from the first line that is not blank or a comment.
// An htpasswd line has the hash right after the colon ("alice:$2y$..."), while a YAML
// mapping key is followed by a space or the end of the line ("users:"); document
// markers, directives and flow mappings are YAML too.
func looksLikeYAML(data []byte) bool {
	for line := range bytes.Lines(data) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		if bytes.HasPrefix(t, []byte("---")) || t[0] == '%' || t[0] == '{' {
			return true
		}
		i := bytes.IndexByte(t, ':')
		return i > 0 && (i == len(t)-1 || t[i+1] == ' ' || t[i+1] == '\t')
	}
	return false
}

func parseHtpasswd(data []byte) ([]account, error) {
	var accts []account
	seen := map[string]int{}
	lineNo := 0
	for line := range strings.Lines(string(data)) {
		lineNo++
		line = strings.TrimRight(line, " \t\r\n")
		if t := strings.TrimLeft(line, " \t"); t == "" || t[0] == '#' {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("auth: users file line %d: expected name:bcrypt-hash (or a YAML file starting with \"users:\")", lineNo)
		}
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("auth: users file line %d: %w", lineNo, err)
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("auth: users file line %d: user %q is already defined on line %d", lineNo, name, prev)
		}
		seen[name] = lineNo
		if err := checkHash(hash); err != nil {
			return nil, fmt.Errorf("auth: users file line %d (user %q): password %w; only bcrypt is accepted: recreate the entry with `htpasswd -B`", lineNo, name, err)
		}
		root, err := defaultRoot(name)
		if err != nil {
			return nil, fmt.Errorf("auth: users file line %d: %w; rename the user or use a YAML users file with an explicit root", lineNo, err)
		}
		accts = append(accts, account{User: User{Name: name, Root: root, Perm: ReadWrite}, hash: []byte(hash)})
	}
	return accts, nil
}

func parseYAML(data []byte) ([]account, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errNoUsers
		}
		return nil, fmt.Errorf("auth: users file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("auth: users file: %w", err)
		}
		return nil, fmt.Errorf("auth: users file line %d: a second YAML document; put every user under the one \"users:\" list", extra.Line)
	}
	if len(doc.Content) != 1 {
		return nil, errNoUsers
	}
	top, err := fields(doc.Content[0], "the users file", "users")
	if err != nil {
		return nil, err
	}
	list := top["users"]
	if isNull(list) {
		return nil, errNoUsers
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("auth: users file line %d: \"users\" must be a list of users (\"- name: ...\")", list.Line)
	}
	var accts []account
	seen := map[string]int{}
	for _, item := range list.Content {
		a, err := parseYAMLUser(item)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[a.Name]; dup {
			return nil, fmt.Errorf("auth: user %q (line %d): already defined on line %d", a.Name, item.Line, prev)
		}
		seen[a.Name] = item.Line
		accts = append(accts, a)
	}
	return accts, nil
}

func parseYAMLUser(n *yaml.Node) (account, error) {
	f, err := fields(n, "a user", "name", "password", "root", "permissions", "rules")
	if err != nil {
		return account{}, err
	}
	name, err := scalar(f["name"], "name")
	if err != nil {
		return account{}, err
	}
	if name == "" {
		return account{}, fmt.Errorf("auth: users file line %d: user without a name", n.Line)
	}
	if err := checkName(name); err != nil {
		return account{}, fmt.Errorf("auth: users file line %d: %w", n.Line, err)
	}
	// From here on every error names the user: that is what the operator searches for.
	fail := func(line int, format string, args ...any) (account, error) {
		return account{}, fmt.Errorf("auth: user %q (line %d): %s", name, line, fmt.Sprintf(format, args...))
	}

	hash, err := scalar(f["password"], "password")
	if err != nil {
		return fail(n.Line, "%v", err)
	}
	if hash == "" {
		return fail(n.Line, "password is missing; run `safedav hash-password` and put its output in \"password:\"")
	}
	if err := checkHash(hash); err != nil {
		return fail(f["password"].Line, "password %v; plain-text passwords are refused: run `safedav hash-password` and put its output in \"password:\"", err)
	}

	a := account{User: User{Name: name, Perm: ReadWrite}, hash: []byte(hash)}
	rootText, err := scalar(f["root"], "root")
	if err != nil {
		return fail(n.Line, "%v", err)
	}
	if rootText == "" {
		if a.Root, err = defaultRoot(name); err != nil {
			return fail(n.Line, "%v; set \"root:\" explicitly", err)
		}
	} else if a.Root, err = backend.CleanName(rootText); err != nil {
		return fail(f["root"].Line, "root %q is not a valid storage name: %v", rootText, err)
	}

	permText, err := scalar(f["permissions"], "permissions")
	if err != nil {
		return fail(n.Line, "%v", err)
	}
	if permText != "" {
		p, ok := parsePermission(permText)
		if !ok {
			return fail(f["permissions"].Line, "permissions %q: want read-only or read-write", permText)
		}
		a.Perm = p
	}

	rules := f["rules"]
	if isNull(rules) {
		return a, nil
	}
	if rules.Kind != yaml.SequenceNode {
		return fail(rules.Line, "\"rules\" must be a list of {path, permissions}")
	}
	seenPath := map[string]int{}
	for _, rn := range rules.Content {
		rf, err := fields(rn, "a rule", "path", "permissions")
		if err != nil {
			return fail(rn.Line, "%v", err)
		}
		pathText, err := scalar(rf["path"], "path")
		if err != nil {
			return fail(rn.Line, "%v", err)
		}
		if pathText == "" {
			return fail(rn.Line, "rule without a path")
		}
		path, err := backend.CleanName(pathText)
		if err != nil {
			return fail(rn.Line, "rule path %q is not a valid name: %v", pathText, err)
		}
		if prev, dup := seenPath[path]; dup {
			return fail(rn.Line, "a rule for %q is already on line %d", path, prev)
		}
		seenPath[path] = rn.Line
		permText, err := scalar(rf["permissions"], "permissions")
		if err != nil {
			return fail(rn.Line, "%v", err)
		}
		p, ok := parsePermission(permText)
		if !ok {
			// A rule exists only to set a permission, so a missing one is an error too.
			return fail(rn.Line, "rule for %q: permissions %q: want read-only or read-write", path, permText)
		}
		a.Rules = append(a.Rules, Rule{Path: path, Perm: p})
	}
	return a, nil
}

// fields returns the values of a YAML mapping by key. Unknown and repeated keys are
// errors: a misspelt "permission: read-only" silently ignored would leave the user
// read-write, which is exactly the mistake a users file must not hide.
func fields(n *yaml.Node, what string, known ...string) (map[string]*yaml.Node, error) {
	if n.Kind == yaml.AliasNode {
		return nil, fmt.Errorf("auth: users file line %d: YAML aliases are not supported", n.Line)
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("auth: users file line %d: %s must be a mapping of %s", n.Line, what, strings.Join(known, ", "))
	}
	out := make(map[string]*yaml.Node, len(known))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || !contains(known, k.Value) {
			return nil, fmt.Errorf("auth: users file line %d: unknown key %q in %s (known keys: %s)", k.Line, k.Value, what, strings.Join(known, ", "))
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("auth: users file line %d: key %q repeated in %s", k.Line, k.Value, what)
		}
		out[k.Value] = v
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// scalar returns the literal text of a single value, "" when it is absent or null. The
// literal text is used, not YAML's typed value, so "name: 007" is the user "007".
func scalar(n *yaml.Node, key string) (string, error) {
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%q must be a single value (line %d)", key, n.Line)
	}
	return n.Value, nil
}

// checkName refuses names that cannot travel in Basic auth (':' ends the user-id in
// RFC 7617 section 2), that would not make a single path segment for the default root
// ('/', "." and ".."), or that would be confusing or dangerous in logs (control
// characters, invalid UTF-8, surrounding spaces).
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty user name")
	case len(name) > maxNameLen:
		return fmt.Errorf("user name longer than %d bytes", maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("user name %q is not valid UTF-8", name)
	case strings.ContainsAny(name, ":/"):
		return fmt.Errorf("user name %q contains ':' or '/'", name)
	case name == "." || name == "..":
		return fmt.Errorf("user name %q is reserved", name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("user name %q has leading or trailing spaces", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("user name %q contains control characters", name)
	}
	return nil
}

// defaultRoot is "/<name>", which must clean to one segment directly below "/": a name
// that cleaned to "/" itself would silently make the user an administrator.
func defaultRoot(name string) (string, error) {
	root, err := backend.CleanName("/" + name)
	if err != nil || root == "/" || backend.Parent(root) != "/" {
		return "", fmt.Errorf("user name %q cannot be used as the default root \"/%s\"", name, name)
	}
	return root, nil
}

// checkHash accepts a well-formed bcrypt hash of a variant that means the same
// algorithm everywhere ($2a$, $2b$, $2y$; $2x$ is the bug-compatible variant of
// crypt_blowfish and is not), with a cost from bcrypt.MinCost to maxCost. The error
// describes what the value looks like without quoting it: it may be a plain password.
func checkHash(h string) error {
	switch {
	case h == "":
		return errors.New("is empty")
	case strings.HasPrefix(h, "{SHA}"):
		return errors.New("is an unsalted {SHA} hash")
	case strings.HasPrefix(h, "$apr1$"):
		return errors.New("is an Apache MD5 ($apr1$) hash")
	case strings.HasPrefix(h, "$1$"):
		return errors.New("is an MD5-crypt ($1$) hash")
	case strings.HasPrefix(h, "$5$"), strings.HasPrefix(h, "$6$"):
		return errors.New("is a SHA-crypt ($5$/$6$) hash")
	case strings.HasPrefix(h, "$2x$"):
		return errors.New("is a $2x$ bcrypt hash (crypt_blowfish bug-compatible variant)")
	case !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$"):
		if len(h) == 13 && strings.Trim(h, bcryptAlphabet) == "" {
			return errors.New("looks like a DES crypt hash")
		}
		return errors.New("is not a bcrypt hash (plain text?)")
	case len(h) != bcryptLen || h[6] != '$' || strings.Trim(h[7:], bcryptAlphabet) != "":
		return errors.New("is not a well-formed bcrypt hash")
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil || h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' {
		return errors.New("is not a well-formed bcrypt hash")
	}
	if cost > maxCost {
		return fmt.Errorf("has bcrypt cost %d, above the limit %d (every uncached login would take too long)", cost, maxCost)
	}
	return nil
}

// bcryptAlphabet is the base64 alphabet bcrypt uses for salt and hash.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
