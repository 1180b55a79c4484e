package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// unlimitedV1 is at or above what cgroup v1 reports for "no limit".
const unlimitedV1 = 1 << 62

// memoryLimitFrom reads the container's memory limit from the first of
// files that exists; 0 when there is none.
func memoryLimitFrom(files []string) (int64, error) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a number of bytes", f, s)
		}
		if n >= unlimitedV1 {
			return 0, nil
		}
		return n, nil
	}
	return 0, nil
}

// setMemoryLimit sets the Go runtime's soft memory limit to ratio of the
// container's limit, so that the garbage collector works harder as the
// operator nears its limit instead of letting the heap double past it and
// the kernel kill the pod. GOMEMLIMIT, where set, wins; ratio 0, or no
// limit, leaves the runtime as it is. It returns the limit it set, 0 if
// none.
func setMemoryLimit(ratio float64, files []string) (int64, error) {
	if ratio < 0 || ratio > 1 {
		return 0, fmt.Errorf("--memory-limit-ratio %v: want a fraction of the container's memory limit, from 0 (off) to 1", ratio)
	}
	if ratio == 0 || os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	limit, err := memoryLimitFrom(files)
	if err != nil || limit == 0 {
		return 0, err
	}
	soft := int64(float64(limit) * ratio)
	debug.SetMemoryLimit(soft)
	return soft, nil
}
