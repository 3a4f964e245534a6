//go:build !linux

package spool

import (
	"errors"
	"os"
	"path/filepath"
)

// batchSyncSupported: without syncfs(2) every file of a snapshot is fsynced.
func batchSyncSupported() bool { return false }

var syncFS = syncFSDefault

func syncFSDefault(*os.File) error { return errors.New("syncfs is not available on this system") }

// createIn creates name (O_EXCL) in the directory dirPath.
func createIn(_ *os.File, dirPath, name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dirPath, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
}
