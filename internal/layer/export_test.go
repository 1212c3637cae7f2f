package layer

// ForceProcFdChmod makes Apply set modes the way it does on kernels without fchmodat2
// (Linux < 6.6), so that path is tested on any kernel; off forgets what was learnt.
func ForceProcFdChmod(on bool) {
	if on {
		chmodPath.Store(chmodProcFd)
	} else {
		chmodPath.Store(chmodUntried)
	}
}

// ChmodAt is chmodAt, for tests that hand it a symlink.
var ChmodAt = chmodAt
