package overwrite_test

import (
	"fmt"

	"safedav/overwrite"
)

func ExampleCandidates() {
	n := 0
	for name := range overwrite.Candidates("/d/archive (2).tar.gz") {
		fmt.Println(name)
		if n++; n == 2 {
			break
		}
	}
	// Output:
	// /d/archive (3).tar.gz
	// /d/archive (4).tar.gz
}

func ExampleRules_For() {
	inbox, _ := overwrite.ParseRule("/inbox/**=rename")
	rules := overwrite.Rules{Default: overwrite.Reject, Rules: []overwrite.Rule{inbox}}
	p1, _ := rules.For("/inbox/scan.pdf", "")
	p2, _ := rules.For("/notes.txt", "")
	p3, _ := rules.For("/notes.txt", "replace") // the client's header wins
	fmt.Println(p1, p2, p3)
	// Output: rename reject replace
}
