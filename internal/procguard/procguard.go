// Package procguard keeps the bot's credentials out of reach of other
// processes on the host: it forgets the environment variables secrets were
// read from, and makes the process undumpable.
//
// Both are defence in depth. Repository commands run in a sandbox where the
// bot's process is invisible; these measures matter when that sandbox is off
// (runner.isolation: none) or broken, and against anything else running as
// the bot's user.
package procguard

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ForgetEnv removes the named variables from the process environment, so
// that neither os.Environ nor a child process sees them, and overwrites them
// in the environment block the kernel gave the process at exec, which is what
// /proc/<pid>/environ shows for the rest of the process's life (os.Unsetenv
// alone leaves it there).
//
// Strings obtained earlier from os.Getenv for these names point into that
// block and read as NUL bytes afterwards: copy them (strings.Clone) before.
func ForgetEnv(names []string) error {
	forget := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" {
			continue
		}
		forget[n] = true
		if err := os.Unsetenv(n); err != nil {
			return fmt.Errorf("unset environment variable %s: %w", n, err)
		}
	}
	if len(forget) == 0 {
		return nil
	}
	return wipeInitialEnv(forget)
}

// wipeInitialEnv overwrites, with NUL bytes, every NAME=value entry of the
// exec-time environment block whose NAME is in forget. The block lives on
// the main thread's stack; /proc/self/mem writes it without unsafe pointers.
func wipeInitialEnv(forget map[string]bool) error {
	start, end, err := envBounds()
	if err != nil {
		return err
	}
	if end <= start {
		return nil
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open /proc/self/mem to wipe the environment: %w", err)
	}
	defer mem.Close()
	block := make([]byte, end-start)
	if _, err := mem.ReadAt(block, int64(start)); err != nil {
		return fmt.Errorf("read the initial environment: %w", err)
	}
	wiped := false
	for off := 0; off < len(block); {
		n := bytes.IndexByte(block[off:], 0)
		if n < 0 {
			n = len(block) - off
		}
		entry := block[off : off+n]
		if name, _, ok := bytes.Cut(entry, []byte("=")); ok && forget[string(name)] {
			clear(entry)
			wiped = true
		}
		off += n + 1
	}
	if !wiped {
		return nil
	}
	if _, err := mem.WriteAt(block, int64(start)); err != nil {
		return fmt.Errorf("wipe the initial environment: %w", err)
	}
	return nil
}

// envBounds reads env_start and env_end, fields 50 and 51 of
// /proc/self/stat (proc(5)).
func envBounds() (start, end uint64, err error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read /proc/self/stat: %w", err)
	}
	// Field 2, the command name, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc/self/stat: no command name")
	}
	fields := strings.Fields(string(b[i+1:])) // fields[0] is field 3
	const envStart, envEnd = 50 - 3, 51 - 3
	if len(fields) <= envEnd {
		return 0, 0, errors.New("/proc/self/stat has no env_start/env_end (Linux before 3.5)")
	}
	if start, err = strconv.ParseUint(fields[envStart], 10, 64); err == nil {
		end, err = strconv.ParseUint(fields[envEnd], 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/self/stat: env bounds: %w", err)
	}
	return start, end, nil
}

// NotDumpable clears the process's dumpable flag: other processes of the
// same user can no longer read its memory, environment or open files through
// /proc/<pid>/{mem,environ,fd} or attach with ptrace, and it leaves no core
// dump holding secrets. Children get the flag back at exec, so it takes
// nothing from the commands the bot starts.
func NotDumpable() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}
