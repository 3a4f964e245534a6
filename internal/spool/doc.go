// Package spool is the filesystem queue between stats-pull and stats-process. This comment is
// the contract; both programs rely on exactly what it says, nothing more.
//
// # Layout
//
//	<dst-dir>/                         pull's dst-dir = process's src-dir: the queue
//	    <epoch>/                       one snapshot (published, complete)
//	        <source>_info              raw `show info` reply, verbatim   e.g. admin1.sock_info
//	        <source>_stat              raw `show stat` reply, verbatim   e.g. 127.0.0.1:5555_stat, ::1:4444_stat
//	        statspipe-partial          only in a partial snapshot (allow-partial = true)
//	    .<anything>                    ignored by everyone (start-up probes, editors' temporaries)
//	<tmp-dst-dir>/<epoch>/             a snapshot being built; nobody but pull looks in here
//	<tmp-dst-dir>/.statspipe-pull.lock held (flock) by the running stats-pull
//	<src-dir>.quarantine/<epoch>[.N]/  snapshots process gave up on, each with a REASON file
//
// <epoch> is the integer Unix time, in seconds, of the scheduled start (the tick) of the pull
// round that produced the snapshot. It is the Graphite timestamp of every line made from the snapshot (haproxystats §2),
// so it is a plain decimal integer: no sign, fits int64 ([TimestampOf]).
//
// Only *_info and *_stat files are data ([IsSnapshotFile]); a processor ignores every other file.
// For HAProxy, <source> is the socket's base name for UNIX sockets and <host>:<port> for TCP
// (IPv6 without brackets), exactly as haproxystats names them.
//
// # Publishing (pull side, [Writer])
//
// A snapshot becomes visible in dst-dir in one atomic step, so a processor never sees a
// directory that is still being filled, and a crash at any moment leaves either nothing or a
// complete snapshot in dst-dir:
//
//  1. [Writer.Begin]: if dst-dir/<epoch> already exists the round is skipped ([ErrExists]).
//     Otherwise tmp-dst-dir/<epoch>/ is created (any leftover of that name is removed first).
//  2. Every file is created there (O_EXCL), written, fsynced and closed ([File.Commit]).
//     A failed source's files are removed ([File.Discard]).
//  3. [Building.Publish] writes the partial record if some sources failed, fsyncs the snapshot
//     directory, renames it into dst-dir with renameat2(RENAME_NOREPLACE) — the one and only
//     step that makes it visible — and fsyncs dst-dir so the new entry survives a power loss.
//
// Name clash rule: a name that already exists in dst-dir is never overwritten and never stops
// the program. It can only happen when two rounds start in the same second (a restart within
// the second of the last publish, or the clock stepping back). Pull logs a warning and skips
// that round; the existing snapshot is untouched.
//
// Other publishers (a replay or backfill by hand, haproxystats-pull during a migration) should
// do the same: build the directory elsewhere on the same filesystem, or under a dot name in
// dst-dir, and rename it in. A directory made in place (cp -r, rsync) is also safe: the
// processor takes a directory only once nothing in it changed for half a second, so it sees the
// copy whole unless the copy stalls for longer than that.
//
// # Start-up checks (pull side, [NewWriter])
//
//   - dst-dir and tmp-dst-dir are created if missing (mkdir -p).
//   - They must be different directories, and tmp-dst-dir must not be a non-dot entry of
//     dst-dir (it would count as a queued snapshot).
//   - They must be on the same filesystem: st_dev is compared, then a probe directory is
//     renamed from one to the other (this also catches bind mounts of one filesystem). A rename
//     across filesystems is a copy, not atomic, so the program refuses to start.
//   - tmp-dst-dir is locked (flock on tmp-dst-dir/.statspipe-pull.lock), so two pullers can never
//     share it; a second one refuses to start. The lock dies with the process, even on kill -9.
//   - Leftover snapshots in tmp-dst-dir (integer-named directories, from a crash or kill -9)
//     are removed. Nothing else there is touched.
//
// # Queue (both sides)
//
// The queue is the set of snapshot directories in dst-dir, as [List] returns them: directories
// only, dot entries and *.quarantine excluded, oldest first (numeric order of integer names;
// names that are not integers come after, sorted by name, so a processor can quarantine them).
// The queue length ([QueueLen]) is what pull compares with queue-size: at queue-size or more,
// pulling is suspended until the processor catches up.
//
// # Partial snapshots (allow-partial = true)
//
// By default a round is all-or-nothing, like haproxystats: one failed source discards the
// round. With allow-partial = true the round is published when at least one source succeeded.
// The snapshot then holds a file named statspipe-partial with one line per failed source,
// "<source name>\t<error>\n" (tabs and newlines inside either field are replaced by spaces). A
// failed source has no files in the snapshot; a snapshot without statspipe-partial is complete.
// Processors read the record with [PartialSources] or [PartialRecord].
//
// # Quarantine (process side)
//
// A snapshot the processor cannot use (a non-integer name, a malformed file) is moved, not
// deleted, to [QuarantineDir](src-dir) = "<src-dir>.quarantine", a sibling of src-dir (on the
// same filesystem unless src-dir is itself a mount point, in which case [Quarantine] fails with
// a clear error). [Quarantine] renames the snapshot there, never replacing an existing entry (a
// clash gets the suffix .1, .2, …), and appends a REASON file to it:
//
//	time: 2026-01-02T15:04:05Z
//	reason: <reason>
//
// # Permissions
//
// Directories are created with mode 0777 and files with 0666, both reduced by the umask, as
// haproxystats does, so that pull and process may run as different users of one group.
package spool
