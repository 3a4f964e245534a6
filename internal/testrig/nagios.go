package testrig

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NagiosPlugins is where Debian's monitoring-plugins-basic installs check_procs and friends.
const NagiosPlugins = "/usr/lib/nagios/plugins"

// NagiosService is one service of the private Nagios: its check runs every second.
type NagiosService struct {
	Name    string
	Command string // the whole command line, absolute paths
}

// Nagios is a real Nagios Core (Debian nagios4-core) with a private configuration and state
// under a temporary directory, checking services of host "localhost" every second.
type Nagios struct {
	Base string
	cmd  *exec.Cmd
	done chan struct{}
	out  *Buffer
}

// NagiosServiceStatus is one servicestatus block of status.dat, after at least one check.
type NagiosServiceStatus struct {
	State      int    // current_state: 0 OK … 3 UNKNOWN
	Output     string // plugin_output: the first line before '|'
	LongOutput string // long_plugin_output (Nagios escapes newlines as \n)
	Perfdata   string // performance_data
}

// StartNagios starts Nagios with services; the test is skipped when nagios4 or the plugins
// are not installed (scripts/test installs them).
func StartNagios(t testing.TB, services []NagiosService) *Nagios {
	t.Helper()
	bin, err := exec.LookPath("nagios4")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/nagios4"); err != nil {
			t.Skip("nagios4 is not installed (Debian: nagios4-core; scripts/test installs it)")
		}
		bin = "/usr/sbin/nagios4"
	}
	if _, err := os.Stat(filepath.Join(NagiosPlugins, "check_dummy")); err != nil {
		t.Skip("the Nagios plugins are not installed (Debian: monitoring-plugins-basic)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}

	n := &Nagios{Base: t.TempDir(), done: make(chan struct{}), out: &Buffer{}}
	for _, d := range []string{"var", "spool", "rw"} {
		if err := os.Mkdir(filepath.Join(n.Base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(n.Base, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := n.Base
	write("nagios.cfg", strings.Join([]string{
		"log_file=" + b + "/var/nagios.log",
		"cfg_file=" + b + "/objects.cfg",
		"object_cache_file=" + b + "/var/objects.cache",
		"precached_object_file=" + b + "/var/objects.precache",
		"resource_file=" + b + "/resource.cfg",
		"status_file=" + b + "/var/status.dat",
		"status_update_interval=1",
		"temp_file=" + b + "/var/nagios.tmp",
		"temp_path=" + b + "/var",
		"lock_file=" + b + "/var/nagios.lock",
		"state_retention_file=" + b + "/var/retention.dat",
		"retain_state_information=0",
		"check_result_path=" + b + "/spool",
		"command_file=" + b + "/rw/nagios.cmd",
		"query_socket=" + b + "/rw/nagios.qh",
		"check_external_commands=0",
		"nagios_user=" + u.Username,
		"nagios_group=" + g.Name,
		"interval_length=1",
		"check_result_reaper_frequency=1",
		"max_check_result_reaper_time=1",
		"service_inter_check_delay_method=n",
		"host_inter_check_delay_method=n",
		"max_service_check_spread=1",
		"max_host_check_spread=1",
		"auto_reschedule_checks=0",
		"enable_notifications=0",
		"execute_host_checks=0",
		"enable_flap_detection=0",
		"use_syslog=0",
		"log_initial_states=1",
		"illegal_macro_output_chars=`~$&|'\"<>",
	}, "\n")+"\n")
	write("resource.cfg", "$USER1$="+NagiosPlugins+"\n")
	var objects strings.Builder
	objects.WriteString(`define timeperiod {
    timeperiod_name always
    alias always
    sunday 00:00-24:00
    monday 00:00-24:00
    tuesday 00:00-24:00
    wednesday 00:00-24:00
    thursday 00:00-24:00
    friday 00:00-24:00
    saturday 00:00-24:00
}
define command {
    command_name notify-nobody
    command_line $USER1$/check_dummy 0
}
define command {
    command_name host-up
    command_line $USER1$/check_dummy 0 up
}
define contact {
    contact_name nobody
    service_notification_period always
    host_notification_period always
    service_notification_options n
    host_notification_options n
    service_notification_commands notify-nobody
    host_notification_commands notify-nobody
    service_notifications_enabled 0
    host_notifications_enabled 0
}
define host {
    host_name localhost
    address 127.0.0.1
    check_command host-up
    max_check_attempts 1
    check_period always
    contacts nobody
    notification_period always
}
`)
	for _, s := range services {
		fmt.Fprintf(&objects, `define command {
    command_name %[1]s
    command_line %[2]s
}
define service {
    host_name localhost
    service_description %[1]s
    check_command %[1]s
    check_interval 1
    retry_interval 1
    max_check_attempts 1
    check_period always
    contacts nobody
    notification_period always
}
`, s.Name, s.Command)
	}
	write("objects.cfg", objects.String())

	if out, err := exec.Command(bin, "-v", filepath.Join(b, "nagios.cfg")).CombinedOutput(); err != nil {
		t.Fatalf("nagios4 -v: %v\n%s", err, out)
	}
	n.cmd = exec.Command(bin, filepath.Join(b, "nagios.cfg"))
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		<-n.done
		if t.Failed() {
			t.Logf("nagios output:\n%s\nnagios.log:\n%s", n.out.String(), n.Log())
		}
	})
	return n
}

// Log is nagios.log so far.
func (n *Nagios) Log() string {
	data, _ := os.ReadFile(filepath.Join(n.Base, "var", "nagios.log"))
	return string(data)
}

// Services reads status.dat: the services checked at least once, by name.
func (n *Nagios) Services(t testing.TB) map[string]NagiosServiceStatus {
	t.Helper()
	f, err := os.Open(filepath.Join(n.Base, "var", "status.dat"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]NagiosServiceStatus{}
	var block map[string]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "servicestatus {":
			block = map[string]string{}
		case line == "}" && block != nil:
			if block["has_been_checked"] == "1" {
				var st NagiosServiceStatus
				fmt.Sscan(block["current_state"], &st.State)
				st.Output, st.LongOutput, st.Perfdata = block["plugin_output"], block["long_plugin_output"], block["performance_data"]
				out[block["service_description"]] = st
			}
			block = nil
		case block != nil:
			if k, v, ok := strings.Cut(line, "="); ok {
				block[k] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// WaitService waits (bounded) until service's status satisfies cond, and returns it.
func (n *Nagios) WaitService(t testing.TB, service string, limit time.Duration, what string, cond func(NagiosServiceStatus) bool) NagiosServiceStatus {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st, ok := n.Services(t)[service]
		if ok && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("Nagios: service %s not %s within %v; last status %+v (checked: %v)", service, what, limit, st, ok)
		}
		select {
		case <-n.done:
			t.Fatalf("nagios4 exited: %s", n.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
