package overlay

// ForceLegacyMount makes mounts use mount(2) with one option string, as on kernels
// without lowerdir+, so both paths are tested here.
func ForceLegacyMount(on bool) { forceLegacy = on }
