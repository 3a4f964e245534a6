//go:build !linux

package spool

import (
	"errors"
	"os"
)

// batchSyncSupported: without syncfs(2) every file of a snapshot is fsynced.
func batchSyncSupported() bool { return false }

var syncFS = func(*os.File) error { return errors.New("syncfs is not available on this system") }
