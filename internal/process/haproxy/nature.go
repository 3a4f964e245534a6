package haproxy

// Nature is how HAProxy says a field combines across processes: the second character of the
// tags of `show stat typed` / `show info typed` (formats.md §1.5, HAProxy's management.txt
// §9.2). The all-metrics output aggregates every field by its nature; typed snapshots carry it
// per field, CSV snapshots get it from a built-in table keyed by field name.
type Nature byte

// The natures HAProxy declares (their tag characters), and NatureUnknown for a field no table
// or typed reply describes.
const (
	NatureUnknown  Nature = 0
	NatureAge      Nature = 'A' // time since an event: min across processes
	NatureAvg      Nature = 'a' // an average: mean across processes
	NatureCounter  Nature = 'C' // monotonic count: sum
	NatureDuration Nature = 'D' // how long something took: max
	NatureGauge    Nature = 'G' // current level: sum
	NatureLimit    Nature = 'L' // a configured limit: sum (as haproxystats sums Maxconn)
	NatureMax      Nature = 'M' // a maximum seen: max, and the sum beside it
	NatureMin      Nature = 'm' // a minimum seen: min
	NatureName     Nature = 'N' // a name: not a number
	NatureOutput   Nature = 'O' // free text: not a number
	NatureRate     Nature = 'R' // events per second: sum
	NatureTime     Nature = 'T' // a date: not aggregated
)

// FieldNatures maps "<obj>.<field>" to the field's nature, where obj is the row type of `show
// stat` (F frontend, B backend, S server, L listener) or I for `show info`; for example
// "S.check_duration" or "I.Uptime_sec". Parsing a typed snapshot fills one; the built-in CSV
// table is another.
type FieldNatures map[string]Nature
