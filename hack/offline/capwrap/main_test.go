package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSpecFileFindsTheBundleOfCreateAndTheProcessFileOfExec(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--root", "/run/runc", "--log", "/x.log", "create", "--bundle", "/b", "id"}, "/b/config.json"},
		{[]string{"--root=/run/runc", "create", "-b=/b", "id"}, "/b/config.json"},
		{[]string{"--systemd-cgroup", "run", "id"}, "config.json"},
		{[]string{"exec", "--process", "/tmp/p.json", "--detach", "id"}, "/tmp/p.json"},
		{[]string{"--debug", "exec", "-p", "/tmp/p.json", "id"}, "/tmp/p.json"},
		{[]string{"start", "id"}, ""},
		{[]string{"--version"}, ""},
	}
	for _, c := range cases {
		if got := specFile(c.args); got != c.want {
			t.Errorf("specFile(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

func TestDropFromFileRemovesMissingCapabilitiesFromEverySetAndKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	spec := `{"ociVersion":"1.2.0","process":{"args":["sh"],"capabilities":{` +
		`"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE"],` +
		`"permitted":["CAP_CHOWN","CAP_SYS_RESOURCE","CAP_KILL"]}},"hostname":"node"}`
	if err := os.WriteFile(path, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dropFromFile(path, map[string]bool{"CAP_SYS_RESOURCE": true}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OCIVersion string `json:"ociVersion"`
		Hostname   string `json:"hostname"`
		Process    struct {
			Args         []string            `json:"args"`
			Capabilities map[string][]string `json:"capabilities"`
		} `json:"process"`
	}
	raw, _ := os.ReadFile(path)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"bounding": {"CAP_CHOWN"}, "effective": {}, "permitted": {"CAP_CHOWN", "CAP_KILL"},
	}
	if !reflect.DeepEqual(got.Process.Capabilities, want) {
		t.Errorf("capabilities = %v, want %v", got.Process.Capabilities, want)
	}
	if got.OCIVersion != "1.2.0" || got.Hostname != "node" || !reflect.DeepEqual(got.Process.Args, []string{"sh"}) {
		t.Errorf("other fields changed: %s", raw)
	}
}

func TestDropFromFileRewritesAProcessSpecOfExec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "process.json")
	if err := os.WriteFile(path, []byte(`{"args":["ls"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_NET_RAW"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dropFromFile(path, map[string]bool{"CAP_SYS_RESOURCE": true}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var got map[string]any
	_ = json.Unmarshal(raw, &got)
	caps := got["capabilities"].(map[string]any)["bounding"].([]any)
	if len(caps) != 1 || caps[0] != "CAP_NET_RAW" {
		t.Errorf("bounding = %v, want [CAP_NET_RAW]", caps)
	}
}

func TestDropFromFileLeavesAFileWithNothingToDropByteForByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	spec := `{"process": {"capabilities": {"bounding": ["CAP_CHOWN"]}},   "x": 1}`
	if err := os.WriteFile(path, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dropFromFile(path, map[string]bool{"CAP_SYS_RESOURCE": true}); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(path); string(raw) != spec {
		t.Errorf("file rewritten: %s", raw)
	}
}
