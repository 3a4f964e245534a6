// Package spool is the filesystem queue between stats-pull and stats-process. This comment is
// the contract; both programs rely on exactly what it says, nothing more.
//
// # Layout
//
//	<dst-dir>/                         pull's dst-dir = process's src-dir: the queue
//	    <epoch>/                       one snapshot (published, complete): a real directory
//	        <socket>_info              HAProxy: raw `show info` reply, verbatim   e.g. admin1.sock_info
//	        <socket>_stat              HAProxy: raw `show stat` reply, verbatim   e.g. 127.0.0.1:5555_stat, ::1:4444_stat
//	        <master>@<gen>_info        HAProxy master-socket: a worker's `show info`   e.g. master.sock@0_info, master.sock@1_info
//	        <master>@<gen>_stat        HAProxy master-socket: a worker's `show stat`   e.g. master.sock@0_stat, master.sock@1_stat
//	        <master>_proc              HAProxy master-socket: the master's `show proc` reply, verbatim (not data)
//	        <socket>_info.typed        with [pull] typed, in place of _info: raw `show info typed` reply, verbatim
//	        <socket>_stat.typed        with [pull] typed, in place of _stat: raw `show stat typed` reply, verbatim
//	        <source>/                  a named source ([source.<source>]), e.g. apps/
//	            source.json            what it is: {"format":1,"kind":"openmetrics","source":"apps","options":[…]}
//	            <instance>.body        one instance's reply body as received (decompressed)
//	            <instance>.meta.json   {"instance","url","content_type","content_encoding","status","duration_seconds","bytes","wire_bytes"}
//	        statspipe-partial          only in a partial snapshot
//	    .<anything>                    ignored by everyone (start-up probes, editors' temporaries)
//	    .statspipe-pull-status.json    stats-pull's last round, rewritten every round (package status)
//	    .statspipe-process-status.json stats-process's last delivery (package status)
//	<tmp-dst-dir>/<epoch>/             a snapshot being built; nobody but pull looks in here
//	<tmp-dst-dir>/.statspipe-pull.lock held (flock) by the running stats-pull
//	<src-dir>.quarantine/<epoch>[.N]/  snapshots process gave up on, each with a REASON file
//	<src-dir>.quarantine/<name>[.N]/<name>  a stray entry (a symlink, FIFO…), moved as it is, and REASON
//
// <epoch> is the integer Unix time, in seconds, of the scheduled start (the tick) of the pull
// round that produced the snapshot. It is the Graphite timestamp of every line made from the snapshot (haproxystats §2),
// so it is a plain decimal integer: no sign, fits int64 ([TimestampOf]).
//
// # Parts
//
// A snapshot has parts ([Parts]), each processed by the processor of its kind:
//
//   - The top-level part: the *_info and *_stat files at the top ([IsSnapshotFile]), from the
//     HAProxy source of [pull], exactly as haproxystats wrote them: <socket> is the socket's base
//     name for UNIX sockets and <host>:<port> for TCP (IPv6 without brackets). Its kind is
//     [TopLevelKind] ("haproxy"). A snapshot with HAProxy only is exactly haproxystats' layout.
//     A [pull] master-socket (HAProxy master-worker, haproxy -W -S) adds one pair per worker,
//     <master>@<gen>_info and <master>@<gen>_stat, where <master> is the socket's base name and
//     <gen> the worker's generation: 0 for the current worker, and for an old worker (one still
//     serving connections of an earlier configuration) its "reloads" column of `show proc`, the
//     number of reloads it has been through (1 = the worker from before the last reload). Two
//     workers of the same generation (nbproc, HAProxy < 2.5) are <gen>, <gen>-2, <gen>-3, … in
//     show proc order. Each pair is one process like any other; <master>_proc (the `show proc`
//     reply) is not data, so it is ignored like any other file.
//     With [pull] typed = true the same sockets are asked the typed forms instead, into
//     <socket>_info.typed and <socket>_stat.typed ([TypedSuffix]; a master-socket's workers into
//     <master>@<gen>_info.typed and <master>@<gen>_stat.typed); the processor reads either
//     form of a socket (the typed one when a snapshot has both) to the same paths and values.
//   - One directory per named source: its name is the source name (letters, digits, '_' and '-',
//     not starting with '-', not an integer, not ending in _info or _stat; [CheckPartName]),
//     and its [SourceInfoFile] says its kind and records the source's processing options
//     (aggregation policies, path options: never URLs or secrets), so that a processor with no
//     pull-side configuration at all, on this host or another, processes it the same way. The
//     processor's own [source.<name>] section of the same kind, when it has one, takes
//     precedence. The other files of the directory belong to the kind; the HTTP kinds write one
//     <instance>.body (the reply body exactly as received, decompressed) and one
//     <instance>.meta.json ([InstanceMeta]) per instance that answered. Instance names are the
//     names of the source's `urls` (host:port, or name=URL): [A-Za-z0-9_.:@[]-], not starting
//     with '.'. The ebpf-maps kind writes the same pair per map: <map>.meta.json with the map's
//     facts, the origin of its types and its counts in Extra, and <map>.body with one JSON line
//     per entry, decoded and raw (internal/sources/ebpfmaps/README.md has the form), so that
//     no BTF is needed to process it.
//
// The files of every part are data; a processor ignores every other file at the top (REASON,
// notes) and dot entries anywhere.
//
// # What a snapshot may contain (process side)
//
// A snapshot is a real directory (not a symlink) directly in src-dir that holds regular files
// and part directories (real directories of regular files) only. statspipe-partial is read by
// [PartialRecord]. Dot entries are not data whatever they are
// (.hidden.sock_stat included): never read, never a reason to quarantine.
//
// Nothing that could block, act on being opened or lead outside the spool is ever followed or
// opened. A snapshot holding anything else that is not a dot entry — a symlink (to a file or a
// directory, inside the spool or not), a FIFO, a UNIX socket, a device node, a directory whose
// name is not a part name or that has no source.json, a directory inside a part directory —
// is quarantined before any of its files is opened ([CheckSnapshot], which only lists the
// directory); the reason names each such entry (up to five) and its type, with a symlink's
// target. Files are opened with [OpenSnapshotFile]: the directory with O_NOFOLLOW, the file's
// type looked up in it without following (fstatat AT_SYMLINK_NOFOLLOW), then openat with
// O_NOFOLLOW|O_NONBLOCK, and fstat must show the same regular file; an entry swapped after the
// check is refused (the file is skipped, logged), never blocked on.
//
// Entries directly in src-dir are classified by [IsQueueEntry], the one rule of [List],
// [QueueLen] (so pull's queue-size) and stats-process's watcher, always from the entry itself
// (lstat), never from what a link points to:
//
//   - dot entries and *.quarantine: not in the queue, ignored;
//   - a real directory: a snapshot;
//   - a symlink, FIFO, socket or device of any name, or a regular file named like a snapshot
//     (an integer): a stray. It counts in the queue until the processor quarantines it: the
//     entry itself is moved, never followed or opened, and the REASON says what it was;
//   - any other regular file: not in the queue, ignored.
//
// # Publishing (pull side, [Writer])
//
// A snapshot becomes visible in dst-dir in one atomic step, so a processor never sees a
// directory that is still being filled, and a crash at any moment leaves either nothing or a
// complete snapshot in dst-dir:
//
//  1. [Writer.Begin]: if dst-dir/<epoch> already exists the round is skipped ([ErrExists]).
//     Otherwise tmp-dst-dir/<epoch>/ is created (any leftover of that name is removed first).
//  2. Every file is created there (O_EXCL), written and closed ([File.Commit]). A failed
//     source's files are removed ([File.Discard]).
//  3. [Building.Publish] writes the partial record if some sources failed, makes the whole
//     snapshot durable (below), renames it into dst-dir with renameat2(RENAME_NOREPLACE) — the
//     one and only step that makes it visible — and fsyncs dst-dir so the new entry survives a
//     power loss. A snapshot that could not be made durable is never renamed: the round fails
//     and the snapshot is removed from tmp-dst-dir.
//
// Durability before the rename: on Linux 5.8 and later, one syncfs(2) of the filesystem
// holding tmp-dst-dir, called through the snapshot directory opened at [Writer.Begin] before
// any file was created. syncfs writes back and waits for every dirty page and inode of that
// filesystem, the snapshot's files and directory entries (part directories included) among
// them, and flushes the device's cache: everything an fsync of each file and directory gives,
// in one writeback pass instead of several I/Os and a cache flush per file. From 5.8 syncfs
// also returns the writeback errors the filesystem saw since that directory was opened, so a
// page of the snapshot that did not reach the disk fails the Publish exactly as a failed fsync
// would (a failed write of another program on the same filesystem in that time fails the round
// too: conservative). Before 5.8 syncfs reported no errors, and on other systems there is
// none, so there every file is fsynced at [File.Commit] and each directory at Publish, as
// before. The rename comes after the sync returned, and dst-dir is on the same filesystem
// (checked at start), so a crash or power loss at any moment leaves in dst-dir either nothing
// or a snapshot whose files are all on disk, complete. On a filesystem shared with programs
// that keep much data dirty, syncfs also waits for theirs: give the spool a filesystem of its
// own when rounds must stay short.
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
// The queue is the set of snapshot directories (and strays) in dst-dir, as [List] returns them
// ([IsQueueEntry]): dot entries and *.quarantine excluded, oldest first (numeric order of
// integer names; names that are not integers come after, sorted by name, so a processor can
// quarantine them).
// The queue length ([QueueLen]) is what pull compares with queue-size: at queue-size or more,
// pulling is suspended until the processor catches up.
//
// # Partial snapshots
//
// By default a source is all-or-nothing, like haproxystats: one failed instance (a stats
// socket, a URL) leaves the whole source out of the round, its files removed. With
// allow-partial = true ([pull] for HAProxy, the source's own section for a named source) the
// instances that answered are kept. One source's failure never discards another's data: the
// round is published when at least one source is kept, and not at all when none is (so a
// HAProxy-only configuration behaves exactly as haproxystats). A snapshot that misses
// something holds a file named statspipe-partial with one line per failed instance,
// "<name>\t<error>\n" (tabs and newlines inside either field are replaced by spaces), where
// <name> is the socket's file prefix for HAProxy (as haproxystats' sources) and
// <source>/<instance> for a named source; a source whose instances could not even be listed
// is recorded under its name. A failed instance has no files in the snapshot; a snapshot
// without statspipe-partial is complete. Processors read the record with [PartialSources] or
// [PartialRecord].
//
// # Removal (process side)
//
// A delivered snapshot is removed by [Remove]: renamed first, in one atomic and durable step,
// to the dot name .removing.<epoch> in src-dir (out of the queue), then deleted. A crash in
// the middle of deleting a directory's files must never leave a snapshot with some of its
// files gone in the queue: processed again, it would overwrite a complete local-store file
// with an incomplete one. What a crash leaves is a dot directory, which the processor deletes
// at start ([RemoveLeftovers]).
//
// # Quarantine (process side)
//
// A snapshot the processor cannot use (a non-integer name, a malformed file, an entry that is
// not a regular file, no usable part) is moved, not deleted, to [QuarantineDir](src-dir) = "<src-dir>.quarantine",
// a sibling of src-dir (on the same filesystem unless src-dir is itself a mount point, in which
// case [Quarantine] fails with a clear error). [Quarantine] renames the snapshot there, never
// replacing an existing entry (a clash gets the suffix .1, .2, …), and appends a REASON file to
// it:
//
//	time: 2026-01-02T15:04:05Z
//	reason: <reason>
//
// A stray is moved as it is (rename(2) moves a link, not its target) into a new directory of its
// name, <src-dir>.quarantine/<name>[.N]/<name>, which gets the REASON. Quarantine never writes
// outside src-dir and its quarantine: the quarantine directory must be a real directory (a
// symlink there makes Quarantine fail, and the snapshot stays in place); the record is appended
// to REASON only when that is a regular file with a single link (opened with
// O_NOFOLLOW|O_NONBLOCK, checked before and after), and a REASON that came with the snapshot as
// something else (a symlink, a FIFO, a hard link) is left alone: the record goes to the first
// free REASON.<n>, created with O_EXCL, with a note saying why.
//
// A snapshot of which some part (or some lines) could not be used, while the rest could, is
// first delivered without it and then quarantined in the same way, its REASON naming the
// source and instance ("source apps: instance 10.0.0.7:9100: … line 12: …"). Replaying it
// delivers the good parts again: harmless duplicates, since a line is identified by path and
// timestamp.
//
// # Replaying a quarantined snapshot
//
// Fix what the REASON names (remove a FIFO, replace a symlink by a copy of its target, repair
// or remove a bad file), then move the snapshot back into src-dir under its epoch name, on the
// same filesystem: mv <src-dir>.quarantine/1700000000.1 <src-dir>/1700000000 (a name with a .N
// suffix is not an epoch and would be quarantined again). The REASON may stay: it is not data,
// and a snapshot quarantined again gets the new record appended. The processor takes it like
// any published snapshot and delivers it with its original timestamp; --once does too. A
// quarantined stray is no snapshot: to use the files a link pointed to, copy them (cp -rL) into
// a directory made under a dot name in src-dir and rename that to the epoch.
//
// # In transit (central tier)
//
// A snapshot sent to another host is one tar stream (Pack, Unpack; readable with tar(1)):
// first statspipe-edge.json ({"format":1,"host":…,"snapshot":"<epoch>"}: the edge's host name,
// which its lines carry), then every file of the snapshot — top-level files and "<source>/<file>"
// of part directories — in name order, mode 0644, time 0, so that one snapshot always packs to
// the same bytes. Anything a snapshot may not hold fails the whole archive, naming the entry, and leaves
// nothing behind: a link, device or directory entry, a name outside the snapshot or nested
// deeper than a part directory, a dot name, a part name CheckPartName refuses, a file twice, a
// part without source.json, more than the limits (100,000 files, 1 GiB), an archive with no
// file (truncated).
//
// On Kafka (dispatch/ship writes, central/tier reads): the archive of one snapshot is cut into
// fragments of at most batch-max-bytes − 16 KiB, one record each, all keyed by the edge's host
// name (so in order on one partition), with the headers statspipe-snapshot = "<host>/<epoch>",
// statspipe-fragment = "<i>/<n>" (1-based) and statspipe-format = "1". The central tier joins
// the fragments, unpacks the archive into a directory of its work-dir and processes it like a
// spool snapshot, writing its lines under the edge's host name; it commits the records' offsets
// once every line is delivered, and quarantines what cannot be used with the reason.
//
// # Permissions
//
// Directories are created with mode 0777 and files with 0666, both reduced by the umask, as
// haproxystats does, so that pull and process may run as different users of one group.
package spool
