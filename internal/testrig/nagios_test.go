package testrig

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNagiosRigRunsChecks(t *testing.T) {
	n := StartNagios(t, []NagiosService{
		{Name: "fine", Command: filepath.Join(NagiosPlugins, "check_dummy") + " 0 all-good"},
		{Name: "broken", Command: filepath.Join(NagiosPlugins, "check_dummy") + " 2 on-fire"},
	})
	fine := n.WaitService(t, "fine", 20*time.Second, "checked", func(NagiosServiceStatus) bool { return true })
	if fine.State != 0 || fine.Output != "OK: all-good" {
		t.Errorf("fine: %+v", fine)
	}
	broken := n.WaitService(t, "broken", 20*time.Second, "checked", func(NagiosServiceStatus) bool { return true })
	if broken.State != 2 || broken.Output != "CRITICAL: on-fire" {
		t.Errorf("broken: %+v", broken)
	}
	if !strings.Contains(n.Log(), "SERVICE ALERT: localhost;broken;CRITICAL;HARD;1;CRITICAL: on-fire") {
		t.Errorf("no alert in nagios.log:\n%s", n.Log())
	}
}
