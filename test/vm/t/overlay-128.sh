# 128 layers on a kernel without lowerdir+: overlay falls back to mount(2) with short links.
/vmtest/vm.test -test.v -test.run 'TestOverlay128Layers$'
