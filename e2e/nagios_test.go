package e2e

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statspipe/statspipe/internal/status"
	"github.com/statspipe/statspipe/internal/testrig"
)

const procsCheck = "../contrib/nagios/check_statspipe_procs"

// The operator's view of an outage, with real Nagios running our checks every second: HAProxy →
// stats-pull runs while stats-process is down; the queue check goes WARNING then CRITICAL and
// the process check is CRITICAL. Once stats-process starts, the queue drains and both are OK.
func TestNagiosSeesTheQueueGrowAndDrain(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 1})
	base := t.TempDir()
	conf := pipelineConfig(t, base, h.SocketDir, 1, `
[graphite]
enabled = false
[local-store]
dir = `+filepath.Join(base, "local-store")+`
`)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	procs := func(program string) string {
		abs, _ := filepath.Abs(procsCheck)
		return strings.Join([]string{abs, "-f", conf, "-u", me.Username, "-b", binDir, program}, " ")
	}
	n := testrig.StartNagios(t, []testrig.NagiosService{
		{Name: "queue", Command: filepath.Join(binDir, "check_statspipe_queue_size") + " -f " + conf + " -o 1 -w 3 -q"},
		{Name: "pull", Command: procs("pull")},
		{Name: "process", Command: procs("process")},
	})

	pull := start(t, "stats-pull", "-f", conf)
	n.WaitService(t, "pull", 20*time.Second, "OK", func(s testrig.NagiosServiceStatus) bool { return s.State == 0 })
	st := n.WaitService(t, "process", 20*time.Second, "CRITICAL", func(s testrig.NagiosServiceStatus) bool { return s.State == 2 })
	if !strings.HasPrefix(st.Output, "PROCS CRITICAL: 0 processes with ") || !strings.Contains(st.Output, "command name 'stats-process', args '-f "+conf+"'") {
		t.Errorf("process check while stats-process is down: %+v", st)
	}
	n.WaitService(t, "queue", 20*time.Second, "WARNING", func(s testrig.NagiosServiceStatus) bool { return s.State == 1 })
	st = n.WaitService(t, "queue", 20*time.Second, "CRITICAL", func(s testrig.NagiosServiceStatus) bool { return s.State == 2 })
	dst := filepath.Join(base, "incoming")
	if !strings.HasPrefix(st.Output, "CRITICAL: queue size ") ||
		!strings.HasSuffix(st.Output, ": Queue location="+dst+", Thresholds OK=1 WARNING=3 and any higher value is critical") ||
		!strings.HasPrefix(st.Perfdata, "queue_size=") || !strings.HasSuffix(st.Perfdata, ";1;3;0; quarantined=0;0;;0;") {
		t.Errorf("queue check with a growing queue: %+v", st)
	}
	if !strings.Contains(n.Log(), "SERVICE ALERT: localhost;queue;CRITICAL;HARD;1;CRITICAL: queue size ") {
		t.Errorf("no CRITICAL alert for the queue in nagios.log")
	}

	proc := start(t, "stats-process", "-f", conf)
	st = n.WaitService(t, "queue", 30*time.Second, "OK", func(s testrig.NagiosServiceStatus) bool { return s.State == 0 })
	if !strings.HasPrefix(st.Output, "OK: queue size ") {
		t.Errorf("queue check once drained: %+v", st)
	}
	st = n.WaitService(t, "process", 20*time.Second, "OK", func(s testrig.NagiosServiceStatus) bool { return s.State == 0 })
	if !strings.HasPrefix(st.Output, "PROCS OK: 1 process with ") || !strings.Contains(st.Output, "command name 'stats-process', args '-f "+conf+"'") {
		t.Errorf("process check with stats-process running: %+v", st)
	}
	pull.stop(t)
	proc.stop(t)
}

// Every state of both checks, and their usage errors, follow the monitoring-plugins
// conventions as Monitoring::Plugin parses them.
func TestNagiosPluginConventions(t *testing.T) {
	if err := exec.Command("perl", "-MMonitoring::Plugin::Performance", "-e", "1").Run(); err != nil {
		t.Skip("Monitoring::Plugin is not installed (Debian: libmonitoring-plugin-perl; scripts/test installs it)")
	}
	if _, err := os.Stat(filepath.Join(testrig.NagiosPlugins, "check_procs")); err != nil {
		t.Skip("check_procs is not installed (Debian: monitoring-plugins-basic)")
	}
	base := t.TempDir()
	dst := filepath.Join(base, "incoming")
	os.MkdirAll(filepath.Join(dst+".quarantine", "1699999999"), 0o755)
	for i := range 5 {
		os.MkdirAll(filepath.Join(dst, strconv.Itoa(1700000000+i)), 0o755)
	}
	conf := writeConfig(t, base, "[pull]\ndst-dir = "+dst+"\n[process]\nsrc-dir = "+filepath.Join(base, "process-in")+
		"\n[graphite]\nenabled = false\n[local-store]\ndir = "+filepath.Join(base, "local-store")+"\n")
	os.MkdirAll(filepath.Join(base, "process-in"), 0o755)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	queue := filepath.Join(binDir, "check_statspipe_queue_size")
	fresh := filepath.Join(binDir, "check_statspipe_freshness")
	freshConf := writeConfig(t, t.TempDir(), "[pull]\ndst-dir = "+dst+"\n") // src-dir = dst-dir
	now := time.Now().UTC()
	if err := status.Write(filepath.Join(dst, status.PullFile), &status.Pull{Format: status.Format, Started: now, Updated: now,
		LastPublish: &status.Publish{Time: now, Snapshot: strconv.FormatInt(now.Unix(), 10)}}); err != nil {
		t.Fatal(err)
	}
	if err := status.Write(filepath.Join(dst, status.ProcessFile), &status.Process{Format: status.Format, Started: now, Updated: now,
		LastDelivery: &status.Delivery{Time: now, Snapshot: "1699999999"}}); err != nil {
		t.Fatal(err)
	}

	type run struct {
		name   string
		argv   []string
		status int
	}
	runs := []run{
		{"queue OK", []string{queue, "-f", conf, "-o", "5", "-w", "9"}, 0},
		{"queue quarantine WARNING", []string{queue, "-f", conf, "-o", "5", "-w", "9", "-q"}, 1},
		{"queue WARNING", []string{queue, "-f", conf, "-o", "4", "-w", "9"}, 1},
		{"queue CRITICAL", []string{queue, "-f", conf, "-o", "1", "-w", "2"}, 2},
		{"queue not configured", []string{queue, "-f", filepath.Join(base, "absent.conf")}, 0},
		{"queue UNKNOWN", []string{queue, "-f", writeConfig(t, t.TempDir(), "[pull]\ndst-dir = /nonexistent\n")}, 3},
		{"queue usage", []string{queue, "--bogus"}, 3},
		{"freshness OK", []string{fresh, "-f", freshConf, "--oldest-warning", "~:", "--oldest-critical", "~:", "--quarantine-warning", "1"}, 0},
		{"freshness quarantine WARNING", []string{fresh, "-f", freshConf, "--oldest-warning", "~:", "--oldest-critical", "~:"}, 1},
		{"freshness CRITICAL", []string{fresh, "-f", freshConf}, 2},
		{"freshness not configured", []string{fresh, "-f", filepath.Join(base, "absent.conf")}, 0},
		{"freshness UNKNOWN", []string{fresh, "-f", writeConfig(t, t.TempDir(), "[pull]\ndst-dir = "+base+"\n")}, 3},
		{"freshness usage", []string{fresh, "-w", "5:1"}, 3},
		{"procs no such user", []string{procsCheck, "-u", "statspipe-no-such-user", "-b", binDir, "process"}, 3},
		{"procs CRITICAL", []string{procsCheck, "-f", conf, "-u", me.Username, "-b", binDir, "process"}, 2},
		{"procs not installed", []string{procsCheck, "-b", base, "process"}, 0},
		{"procs usage", []string{procsCheck, "-b", binDir, "proxy"}, 3},
	}
	check := func(r run) {
		t.Helper()
		cmd := exec.Command(r.argv[0], r.argv[1:]...)
		out, _ := cmd.Output()
		if got := cmd.ProcessState.ExitCode(); got != r.status {
			t.Errorf("%s: exit status %d, want %d; output:\n%s", r.name, got, r.status, out)
		}
		v := exec.Command("perl", "testdata/check-plugin-output.pl", strconv.Itoa(cmd.ProcessState.ExitCode()))
		v.Stdin = strings.NewReader(string(out))
		if verdict, err := v.CombinedOutput(); err != nil {
			t.Errorf("%s: output breaks the plugin conventions: %s\noutput:\n%s", r.name, verdict, out)
		}
	}
	for _, r := range runs {
		check(r)
	}
	// A missing user is one clear line, not check_procs' usage text.
	out, _ := exec.Command(procsCheck, "-u", "statspipe-no-such-user", "-b", binDir, "process").Output()
	if want := "UNKNOWN: no user 'statspipe-no-such-user' on this host: give the user stats-process runs as with -u (default: haproxystats)\n"; string(out) != want {
		t.Errorf("procs without its user: %q, want %q", out, want)
	}
	proc := start(t, "stats-process", "-f", conf)
	waitUntil(t, 20*time.Second, "stats-process to start", func() bool {
		return strings.Contains(proc.out.String(), "msg=started")
	})
	check(run{"procs OK", []string{procsCheck, "-f", conf, "-u", me.Username, "-b", binDir, "process"}, 0})
	proc.stop(t)
}

// The stale pull of issue 11, with real Nagios checking every second: HAProxy → stats-pull →
// stats-process runs; the socket-dir is emptied (the socket moved away, HAProxy still
// running), so stats-pull publishes nothing while the queue check and the process check stay
// OK (checked here too). The freshness check goes WARNING, then CRITICAL as the last publish
// ages past -w 3 and -c 6 seconds, naming stats-pull's error; once the socket is back it is OK.
func TestNagiosSeesAStalePull(t *testing.T) {
	h := testrig.StartHAProxy(t, testrig.HAProxyOptions{Instances: 1})
	base := t.TempDir()
	conf := pipelineConfig(t, base, h.SocketDir, 1, `
[graphite]
enabled = false
[local-store]
dir = `+filepath.Join(base, "local-store")+`
`)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Abs(procsCheck)
	n := testrig.StartNagios(t, []testrig.NagiosService{
		{Name: "freshness", Command: filepath.Join(binDir, "check_statspipe_freshness") + " -f " + conf + " -w 3 -c 6"},
		{Name: "queue", Command: filepath.Join(binDir, "check_statspipe_queue_size") + " -f " + conf + " -o 1 -w 3 -q"},
		{Name: "pull", Command: strings.Join([]string{procs, "-f", conf, "-u", me.Username, "-b", binDir, "pull"}, " ")},
	})
	pull := start(t, "stats-pull", "-f", conf)
	proc := start(t, "stats-process", "-f", conf)

	isOK := func(s testrig.NagiosServiceStatus) bool {
		return s.State == 0 && strings.HasPrefix(s.Output, "OK: stats-pull published ") && strings.Contains(s.Output, "stats-process delivered ")
	}
	st := n.WaitService(t, "freshness", 30*time.Second, "OK with a delivery", isOK)
	if !strings.HasPrefix(st.Perfdata, "pull_age=") || !strings.Contains(st.Perfdata, "s;3;6;0; delivery_age=") {
		t.Errorf("freshness check while running: %+v", st)
	}

	// Empty the socket-dir: HAProxy keeps listening on the moved socket.
	sock := h.Instances[0].Socket
	away := h.SocketDir + "-away"
	if err := os.Mkdir(away, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(away) })
	moved := filepath.Join(away, filepath.Base(sock))
	if err := os.Rename(sock, moved); err != nil {
		t.Fatal(err)
	}
	emptied := time.Now()
	st = n.WaitService(t, "freshness", 20*time.Second, "WARNING", func(s testrig.NagiosServiceStatus) bool { return s.State == 1 })
	if !strings.HasPrefix(st.Output, "WARNING: stats-pull published nothing for ") ||
		!strings.Contains(st.Output, "last error ") || !strings.Contains(st.Output, "nothing published this round") {
		t.Errorf("freshness check once the socket-dir is empty: %+v", st)
	}
	st = n.WaitService(t, "freshness", 20*time.Second, "CRITICAL", func(s testrig.NagiosServiceStatus) bool { return s.State == 2 })
	if !strings.HasPrefix(st.Output, "CRITICAL: stats-pull published nothing for ") {
		t.Errorf("freshness check with a stale pull: %+v", st)
	}
	if since := time.Since(emptied); since < 5*time.Second {
		t.Errorf("CRITICAL %v after the socket-dir was emptied, before -c 6 s could pass (less 1 s: the last publish came before)", since)
	}
	if !strings.Contains(n.Log(), "SERVICE ALERT: localhost;freshness;WARNING;HARD;1;WARNING: stats-pull published nothing for ") ||
		!strings.Contains(n.Log(), "SERVICE ALERT: localhost;freshness;CRITICAL;HARD;1;CRITICAL: stats-pull published nothing for ") {
		t.Errorf("no WARNING and CRITICAL alerts in nagios.log")
	}
	t.Logf("stale pull: %s|%s\n%s", st.Output, st.Perfdata, strings.ReplaceAll(st.LongOutput, `\n`, "\n"))
	// What the issue found: the other checks see nothing wrong.
	services := n.Services(t)
	if q, ok := services["queue"]; !ok || q.State != 0 || services["pull"].State != 0 || !strings.HasPrefix(services["pull"].Output, "PROCS OK: 1 process") {
		t.Errorf("queue and process checks during the stale pull (both should stay OK): %+v %+v", services["queue"], services["pull"])
	}

	// Recovery.
	if err := os.Rename(moved, sock); err != nil {
		t.Fatal(err)
	}
	st = n.WaitService(t, "freshness", 20*time.Second, "OK again", isOK)
	t.Logf("recovered: %s|%s", st.Output, st.Perfdata)
	pull.stop(t)
	proc.stop(t)
}

// contrib/nagios/statspipe.cfg, the sample command and service definitions, passes Nagios'
// own configuration check (nagios4 -v) with the templates it expects.
func TestNagiosSampleDefinitionsVerify(t *testing.T) {
	bin, err := exec.LookPath("nagios4")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/nagios4"); err != nil {
			t.Skip("nagios4 is not installed (Debian: nagios4-core; scripts/test installs it)")
		}
		bin = "/usr/sbin/nagios4"
	}
	sample, err := filepath.Abs("../contrib/nagios/statspipe.cfg")
	if err != nil {
		t.Fatal(err)
	}
	b := t.TempDir()
	for _, d := range []string{"var", "spool"} {
		os.Mkdir(filepath.Join(b, d), 0o755)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(b, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nagios.cfg", strings.Join([]string{
		"log_file=" + b + "/var/nagios.log", "cfg_file=" + b + "/base.cfg", "cfg_file=" + sample,
		"resource_file=" + b + "/resource.cfg", "status_file=" + b + "/var/status.dat",
		"temp_file=" + b + "/var/nagios.tmp", "temp_path=" + b + "/var", "lock_file=" + b + "/var/nagios.lock",
		"check_result_path=" + b + "/spool", "nagios_user=" + me.Username, "illegal_macro_output_chars=`~$&|'\"<>",
	}, "\n")+"\n")
	write("resource.cfg", "$USER1$="+testrig.NagiosPlugins+"\n")
	write("base.cfg", `define timeperiod {
    timeperiod_name always
    alias always
    monday 00:00-24:00
}
define command {
    command_name dummy
    command_line $USER1$/check_dummy 0
}
define contact {
    contact_name nobody
    service_notification_period always
    host_notification_period always
    service_notification_options n
    host_notification_options n
    service_notification_commands dummy
    host_notification_commands dummy
}
define service {
    name generic-service
    register 0
    check_interval 1
    retry_interval 1
    max_check_attempts 1
    check_period always
    contacts nobody
    notification_period always
}
define hostgroup {
    hostgroup_name haproxy
}
define host {
    host_name lb1
    address 127.0.0.1
    check_command dummy
    max_check_attempts 1
    check_period always
    contacts nobody
    notification_period always
    hostgroups haproxy
}
`)
	out, err := exec.Command(bin, "-v", filepath.Join(b, "nagios.cfg")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Total Warnings: 0") || !strings.Contains(string(out), "Total Errors:   0") {
		t.Fatalf("nagios4 -v: %v\n%s", err, out)
	}
	for _, want := range []string{"Checked 4 services.", "Checked 4 commands."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nagios4 -v does not say %q:\n%s", want, out)
		}
	}
}
