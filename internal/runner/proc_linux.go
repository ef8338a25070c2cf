package runner

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// groupAlive reports whether any process of group pgid is still running.
//
// kill(-pgid, 0) is not enough: a killed process stays in its group as a
// zombie until its parent reaps it, and orphans are reaped by PID 1, which
// in a container is often the bot itself or an init that never reaps. So
// this reads /proc and ignores zombies. Zombies whose parent is this
// process (the bot is PID 1 or a child subreaper) and that are not the
// group leader (os/exec reaps that one) are reaped here, or they would
// pile up for the life of the bot.
func groupAlive(pgid int) bool {
	dir, err := os.Open("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	self := os.Getpid()
	alive := false
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		state, ppid, pgrp, ok := procStat(name)
		if !ok || pgrp != pgid {
			continue
		}
		if state == 'Z' || state == 'X' {
			if ppid == self && pid != pgid {
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			}
			continue
		}
		alive = true
	}
	return alive
}

// procStat reads state, parent and process group from /proc/<pid>/stat.
// The command name (field 2) may contain spaces and ')', so fields are
// counted from the last ')'.
func procStat(pid string) (state byte, ppid, pgrp int, ok bool) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return 0, 0, 0, false
	}
	f := bytes.Fields(data[i+2:])
	if len(f) < 3 {
		return 0, 0, 0, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil || len(f[0]) != 1 {
		return 0, 0, 0, false
	}
	return f[0][0], ppid, pgrp, true
}
