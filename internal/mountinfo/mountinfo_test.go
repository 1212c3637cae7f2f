package mountinfo

import "testing"

func TestParse(t *testing.T) {
	cases := []struct {
		line string
		want Mount
		ok   bool
	}{
		{`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`,
			Mount{ID: 36, Parent: 35, Root: "/mnt1", Point: "/mnt2", Options: "rw,noatime", Optional: "master:1",
				FSType: "ext3", Source: "/dev/root", SuperOptions: "rw,errors=continue"}, true},
		{`77 49 0:38 / /var/lib/a\040b rw,relatime - overlay overlay rw,lowerdir=l/A:l/B`,
			Mount{ID: 77, Parent: 49, Root: "/", Point: "/var/lib/a b", Options: "rw,relatime",
				FSType: "overlay", Source: "overlay", SuperOptions: "rw,lowerdir=l/A:l/B"}, true},
		{`garbage`, Mount{}, false},
		{`1 2 3:4 / / rw shared:1 master:2`, Mount{}, false},
	}
	for _, c := range cases {
		got, ok := Parse(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestReadSelfHasRoot(t *testing.T) {
	ms, err := Read(0)
	if err != nil {
		t.Fatal(err)
	}
	var root bool
	for _, m := range ms {
		if m.Point == "/" {
			root = true
		}
	}
	if !root {
		t.Fatalf("no mount on / among %d mounts", len(ms))
	}
	if ok, err := Mounted("/"); !ok || err != nil {
		t.Fatalf("Mounted(/) = %v, %v", ok, err)
	}
	d := t.TempDir()
	if ok, _ := Mounted(d); ok {
		t.Fatalf("Mounted(%s) = true for a plain dir", d)
	}
}
