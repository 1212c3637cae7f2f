package layer

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// EnvMaxSize names the environment variable that sets the extraction cap (bytes, or with a
// K, M, G or T suffix, powers of 1024).
const EnvMaxSize = "HARDWAY_UNPACK_MAX_SIZE"

// DefaultMaxSize is the cap on what one image may extract: larger than any real image
// (the biggest ML images are some tens of GB), small enough that a decompression bomb or a
// sparse file claiming terabytes stops long before the disk is full.
const DefaultMaxSize = 64 << 30

// headerCost is what every entry is charged on top of its content: its tar header block.
// It bounds inode bombs (millions of empty files) by the same cap.
const headerCost = 512

// ErrTooBig is wrapped by the error of an extraction that hit its Budget.
var ErrTooBig = errors.New("extraction size cap exceeded")

// Budget is the cap on the bytes an extraction may write, shared by the layers of one image
// when they are extracted in parallel. Each entry is charged its declared (for sparse files:
// logical) size before anything is written, so a bomb stops with nothing of it on disk.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of max bytes.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Max is the budget's cap.
func (b *Budget) Max() int64 { return b.max }

// Used is what has been charged so far.
func (b *Budget) Used() int64 { return b.used.Load() }

// charge takes n bytes (plus the header cost) for the entry name, or fails once the cap is passed.
func (b *Budget) charge(name string, n int64) error {
	if n < 0 {
		return fmt.Errorf("%s: negative size %d", name, n)
	}
	if n > b.max {
		return fmt.Errorf("%s: %d bytes: %w (%s = %s)", name, n, ErrTooBig, EnvMaxSize, FormatSize(b.max))
	}
	if used := b.used.Add(n + headerCost); used > b.max {
		return fmt.Errorf("%s: the image would extract more than %s: %w", name, FormatSize(b.max), ErrTooBig)
	}
	return nil
}

// MaxSizeFromEnv is the cap set by $HARDWAY_UNPACK_MAX_SIZE, or DefaultMaxSize.
func MaxSizeFromEnv() (int64, error) {
	v := os.Getenv(EnvMaxSize)
	if v == "" {
		return DefaultMaxSize, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", EnvMaxSize, err)
	}
	return n, nil
}

// ParseSize reads 1048576, 512K, 100M, 64G or 1T (powers of 1024).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	shift := 0
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			shift = 10 * (i + 1)
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("bad size %q (want e.g. 512M, 64G)", s)
	}
	return n << shift, nil
}

// FormatSize prints n in the largest unit that divides it.
func FormatSize(n int64) string {
	for i, u := range []string{"T", "G", "M", "K"} {
		shift := 10 * (4 - i)
		if n >= 1<<shift && n%(1<<shift) == 0 {
			return strconv.FormatInt(n>>shift, 10) + u
		}
	}
	return strconv.FormatInt(n, 10)
}
