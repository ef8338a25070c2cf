//go:build unix && !linux

package runner

func becomeSubreaper() {}
