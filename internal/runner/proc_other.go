//go:build unix && !linux

package runner

import "syscall"

// groupAlive reports whether group pgid still has members. Without /proc a
// zombie counts as a member until its parent reaps it.
func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}
