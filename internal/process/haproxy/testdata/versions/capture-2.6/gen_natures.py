#!/usr/bin/env python3
# Writes natures_table.go (internal/process/haproxy) from the `show stat typed` and
# `show info typed` replies of this directory. Run from internal/process/haproxy:
#   python3 testdata/versions/capture-2.6/gen_natures.py && gofmt -w natures_table.go
import glob, collections
cap = 'testdata/versions/capture-2.6/'
names = {'A': 'Age', 'a': 'Avg', 'C': 'Counter', 'D': 'Duration', 'G': 'Gauge', 'L': 'Limit',
         'M': 'Max', 'm': 'Min', 'N': 'Name', 'O': 'Output', 'R': 'Rate', 'T': 'Time'}
st = collections.OrderedDict()
for f in sorted(glob.glob(cap + '*_stat_typed')):
    for line in open(f):
        line = line.rstrip('\n')
        if not line:
            continue
        name, tags, typ, val = line.split(':', 3)
        parts = name.split('.')
        obj, fpos, field = parts[0], int(parts[3]), '.'.join(parts[4:-1])
        d = st.setdefault(field, {'pos': fpos})
        if d.get(obj, tags[1]) != tags[1]:
            raise SystemExit('%s: %s is %s and %s' % (field, obj, d[obj], tags[1]))
        d[obj] = tags[1]
info = collections.OrderedDict()
for f in sorted(glob.glob(cap + '*_info_typed')):
    for line in open(f):
        line = line.rstrip('\n')
        if not line:
            continue
        name, tags, typ, val = line.split(':', 3)
        pos, rest = name.split('.', 1)
        info[rest.rsplit('.', 1)[0]] = (int(pos), tags[1])
q = lambda c: 'Nature' + names[c]
HEAD = """package haproxy

// Code generated from testdata/versions/capture-2.6 (`show stat typed`, `show info typed` of
// HAProxy 2.6.12, see its README) by its gen_natures.py; DO NOT EDIT by hand:
// TestBuiltinNaturesMatchCapture checks it against the capture. Columns the capture has no
// value for (and the columns of later versions) are in documentedNatures (natures.go).

// capturedNatures gives a `show stat` column's nature per row type, indexed by kind
// (frontend, backend, server, listener); NatureUnknown where the capture has no such cell.
var capturedNatures = map[string][4]Nature{
"""
out = [HEAD]
for field, d in sorted(st.items(), key=lambda kv: kv[1]['pos']):
    out.append('\t"%s": {%s},\n' % (field, ', '.join(q(d[o]) if o in d else 'NatureUnknown' for o in 'FBSL')))
out.append("}\n\n// capturedInfoNatures gives a `show info` key's nature.\nvar capturedInfoNatures = map[string]Nature{\n")
for key, (pos, nat) in sorted(info.items(), key=lambda kv: kv[1][0]):
    out.append('\t"%s": %s,\n' % (key, q(nat)))
out.append('}\n')
open('natures_table.go', 'w').write(''.join(out))
