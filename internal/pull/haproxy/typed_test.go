package haproxy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/testrig"
)

// With Typed, each socket is asked the typed forms only (one connection, `show info typed;show
// stat typed`), and the replies are stored verbatim under the .typed names (and nothing under
// the plain ones).
func TestTypedPullsTypedFormsIntoTypedFiles(t *testing.T) {
	dir := shortDir(t)
	info := []byte("0.Name.1:POS:str:HAProxy\n8.Uptime_sec.1:MDP:u32:7\n\n")
	stat := []byte("F.2.0.0.pxname.1:KNS:str:fe\nF.2.0.1.svname.1:KNS:str:FRONTEND\n\n")
	sock := testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "admin1.sock"), testrig.FakeReply{
		"show info typed": info, "show stat typed": stat,
	}, false)
	log, _ := testrig.Logger()
	p := FromConfig(config.Pull{SocketDir: dir, Workers: 1, Typed: true}, log)
	b := newBuilding(t)
	for name, err := range pullAll(t, context.Background(), p, b) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for file, want := range map[string][]byte{"admin1.sock_info.typed": info, "admin1.sock_stat.typed": stat} {
		got, err := os.ReadFile(filepath.Join(b.Path(), file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if des, _ := os.ReadDir(b.Path()); len(des) != 2 {
		t.Fatalf("%d files, want 2", len(des))
	}
	if n := sock.Commands(); n != 2 {
		t.Fatalf("%d commands, want 2", n)
	}
}

// Typed replies have the limits and errors of the plain ones: an error reply (HAProxy before
// typed existed) is stored as is for stats-process to reject, too large a reply fails the source.
func TestTypedRepliesHaveThePlainLimits(t *testing.T) {
	dir := shortDir(t)
	testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "big.sock"), testrig.FakeReply{
		"show info typed": []byte("0.Name.1:POS:str:HAProxy\n\n"), "show stat typed": bytes.Repeat([]byte("x"), 10000),
	}, false)
	// a socket that closes without a byte (both replies are asked on one connection)
	testrig.ServeFakeStats(t, "unix", filepath.Join(dir, "empty.sock"), testrig.FakeReply{
		"show info typed": {}, "show stat typed": {},
	}, false)
	log, _ := testrig.Logger()
	errs := pullAll(t, context.Background(), New(Options{SocketDir: dir, Typed: true, MaxReplySize: 4096}, log), newBuilding(t))
	if err := errs["big.sock"]; err == nil || !strings.Contains(err.Error(), `reply to "show stat typed"`) ||
		!strings.Contains(err.Error(), "larger than max-reply-size (4096 bytes)") {
		t.Errorf("big.sock: %v", err)
	}
	if err := errs["empty.sock"]; err == nil || !strings.Contains(err.Error(), `received zero data for "show info typed"`) {
		t.Errorf("empty.sock: %v", err)
	}
}

// Without Typed nothing changes: the plain commands into the plain names.
func TestTypedOffAsksPlainForms(t *testing.T) {
	p := New(Options{}, nil)
	if got := p.commands("a.sock"); got != [2]command{{"show info", "a.sock_info"}, {"show stat", "a.sock_stat"}} {
		t.Fatalf("commands = %v", got)
	}
	p = New(Options{Typed: true}, nil)
	if got := p.commands("a.sock"); got != [2]command{{"show info typed", "a.sock_info.typed"}, {"show stat typed", "a.sock_stat.typed"}} {
		t.Fatalf("typed commands = %v", got)
	}
}
