package testutil

import (
	"fmt"
	"os"
	"os/exec"
)

// InThrowawayNetns is for a TestMain: on its first call it re-executes the test binary under
// `unshare --net` and exits with its status; in the re-executed binary it brings up lo and
// returns. Everything the tests then do (a registry on 127.0.0.1, bridges, iptables rules,
// packets) stays in a network namespace that plays the host and vanishes with the process.
// name prefixes the error lines ("e2e", "labs").
func InThrowawayNetns(name string) {
	const marker = "HARDWAY_TEST_IN_NETNS"
	if os.Getenv(marker) != "1" {
		if os.Geteuid() != 0 {
			fmt.Fprintf(os.Stderr, "%s: these tests mount, make namespaces, cgroups and veths: run them as root (sudo make test)\n", name)
			os.Exit(1)
		}
		cmd := exec.Command("unshare", append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
		cmd.Env = append(os.Environ(), marker+"=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintf(os.Stderr, "%s: unshare --net: %v\n", name, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: ip link set lo up: %v: %s\n", name, err, out)
		os.Exit(1)
	}
}
