package reference

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// The hand-written matchers against the grammar as regexps (Docker's reference package's),
// on many random strings over the characters that matter.
func TestGrammarMatchesRegexps(t *testing.T) {
	res := []struct {
		name string
		re   *regexp.Regexp
		f    func(string) bool
	}{
		{"component", regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`), validComponent},
		{"domain", regexp.MustCompile(`^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$`), validDomain},
		{"tag", regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`), validTag},
	}
	const chars = "aZ9f._-:[]/"
	r := rand.New(rand.NewPCG(1, 2))
	fixed := []string{"", "a", "a__b", "a___b", "a--b", "a.-b", "[::1]:5000", "[::1]", "[]", "[:]:1", "localhost:",
		"a.b.c:0", "-a", "a-", "x:y:1", "_x", string(make([]byte, 128)), "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"}
	for _, g := range res {
		try := func(s string) {
			if want, got := g.re.MatchString(s), g.f(s); want != got {
				t.Errorf("%s %q: regexp says %v, hand-written %v", g.name, s, want, got)
			}
		}
		for _, s := range fixed {
			try(s)
		}
		for range 100000 {
			b := make([]byte, r.IntN(10))
			for i := range b {
				b[i] = chars[r.IntN(len(chars))]
			}
			try(string(b))
		}
	}
}
