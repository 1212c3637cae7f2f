package state

import (
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	for id, ok := range map[string]bool{
		"web": true, "a": true, "Web_1.x-2": true, "9": true, strings.Repeat("a", 63): true,
		"": false, strings.Repeat("a", 64): false, "-web": false, ".web": false, "_web": false,
		"we b": false, "web/1": false, "wéb": false, "web\n": false, "../x": false,
	} {
		if err := ValidID(id); (err == nil) != ok {
			t.Errorf("ValidID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}
