package layer_test

import (
	"strconv"
	"syscall"
)

type syscallStat = syscall.Stat_t

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
