//go:build !unix

package connlimit

import "errors"

// openFileLimit has no portable answer here: Config.Max must be set.
func openFileLimit() (int, error) {
	return 0, errors.New("no open-file limit on this platform")
}
