// capwrap: an OCI runtime wrapper for hosts whose capability bounding set lacks capabilities that
// `docker run --privileged` (and so kind) asks for.
//
// runc refuses to start a container whose spec grants a capability the calling process cannot hold ("unable
// to apply caps: operation not permitted"). On such a host, dockerd (and the nested containerd of an
// offline kind node) runs this program instead of runc. It removes from the OCI spec every capability that
// is not in its own bounding set, then replaces itself with the real runc, passing the arguments through
// unchanged:
//
//   - `create` and `run` read the spec from <bundle>/config.json (--bundle, default: the working directory);
//   - `exec` reads the process spec from the file given with --process.
//
// On a host whose bounding set holds every capability it removes nothing: the project registers it only
// where /proc/self/status shows a capability missing (hack/docker-up.sh, the node entrypoint).
//
// The real runc is the first `runc` on PATH that is not this program, or the one named by CAPWRAP_RUNC.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// capNames lists the capabilities by number (linux/capability.h), as the OCI spec names them.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// Global runc flags that take a value (runc --help); needed to find the subcommand.
var globalFlagsWithValue = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "capwrap: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	missing, err := missingCapabilities()
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		if file := specFile(args); file != "" {
			if err := dropFromFile(file, missing); err != nil {
				return err
			}
		}
	}
	runc, err := realRunc()
	if err != nil {
		return err
	}
	return syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
}

// missingCapabilities returns the names of known capabilities absent from this process's bounding set.
func missingCapabilities() (map[string]bool, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bounding, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("reading CapBnd: %w", err)
			}
			missing := map[string]bool{}
			for bit, name := range capNames {
				if bounding&(1<<uint(bit)) == 0 {
					missing[name] = true
				}
			}
			return missing, nil
		}
	}
	return nil, errors.New("no CapBnd line in /proc/self/status")
}

// specFile returns the JSON file this runc invocation reads capabilities from, or "" when it reads none.
func specFile(args []string) string {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		flag, _, hasValue := strings.Cut(args[i], "=")
		i++
		if globalFlagsWithValue[flag] && !hasValue {
			i++
		}
	}
	if i >= len(args) {
		return ""
	}
	command, rest := args[i], args[i+1:]
	switch command {
	case "create", "run":
		bundle := flagValue(rest, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		return filepath.Join(bundle, "config.json")
	case "exec":
		return flagValue(rest, "--process", "-p")
	}
	return ""
}

// flagValue finds `--name value`, `--name=value`, `-n value` or `-n=value` among a subcommand's arguments.
func flagValue(args []string, long, short string) string {
	for i, arg := range args {
		if arg == "--" {
			break
		}
		for _, name := range []string{long, short} {
			if arg == name && i+1 < len(args) {
				return args[i+1]
			}
			if value, ok := strings.CutPrefix(arg, name+"="); ok {
				return value
			}
		}
	}
	return ""
}

// dropFromFile rewrites a runtime spec (config.json) or a process spec (exec --process) in place, keeping
// every other field exactly as it was.
func dropFromFile(path string, missing map[string]bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	changed := false
	if processRaw, ok := doc["process"]; ok { // a runtime spec: capabilities live under .process
		var process map[string]json.RawMessage
		if err := json.Unmarshal(processRaw, &process); err != nil {
			return fmt.Errorf("%s: process: %w", path, err)
		}
		if changed, err = dropFromProcess(process, missing); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if changed {
			if doc["process"], err = json.Marshal(process); err != nil {
				return err
			}
		}
	} else if changed, err = dropFromProcess(doc, missing); err != nil { // a process spec
		return fmt.Errorf("%s: %w", path, err)
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}

func dropFromProcess(process map[string]json.RawMessage, missing map[string]bool) (bool, error) {
	capsRaw, ok := process["capabilities"]
	if !ok || string(capsRaw) == "null" {
		return false, nil
	}
	var caps map[string][]string
	if err := json.Unmarshal(capsRaw, &caps); err != nil {
		return false, fmt.Errorf("capabilities: %w", err)
	}
	changed := false
	for set, names := range caps {
		kept := names[:0]
		for _, name := range names {
			if missing[name] {
				changed = true
				continue
			}
			kept = append(kept, name)
		}
		caps[set] = kept
	}
	if !changed {
		return false, nil
	}
	out, err := json.Marshal(caps)
	if err != nil {
		return false, err
	}
	process["capabilities"] = out
	return true, nil
}

// realRunc finds the runc this program stands in for.
func realRunc() (string, error) {
	if path := os.Getenv("CAPWRAP_RUNC"); path != "" {
		return path, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	self, _ = filepath.EvalSymlinks(self)
	for _, dir := range filepath.SplitList(os.Getenv("PATH") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") {
		candidate := filepath.Join(dir, "runc")
		resolved, err := filepath.EvalSymlinks(candidate)
		if err != nil || resolved == self {
			continue
		}
		if info, err := os.Stat(resolved); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			if _, err := exec.LookPath(resolved); err == nil {
				return resolved, nil
			}
		}
	}
	return "", errors.New("no runc found on PATH (set CAPWRAP_RUNC)")
}
