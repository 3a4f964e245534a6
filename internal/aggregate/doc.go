// Package aggregate is the generic aggregation engine: the samples (package sample) of the N
// instances of one source, fed instance by instance, become Graphite plaintext lines, one
// aggregate per series and function, optionally each instance's own values too.
//
// # Functions
//
// Across the instances of one source, per series (sample Name + labels), these functions:
// sum avg min max count stddev and pNN (any integer 1–99, written without a leading zero):
//
//   - a function aggregates over the instances that have the series; NaN and ±Inf samples are
//     skipped (an instance with a NaN does not count);
//   - avg is the arithmetic mean (sum / count); count is the number of instances with a
//     finite value; stddev is the sample standard deviation (n − 1), not emitted with fewer
//     than 2 values, computed with Welford's method (numerically stable in one pass);
//   - pNN is the nearest rank: sort the n values, take index round_half_even((n − 1) × NN/100)
//     (math.RoundToEven). The product is computed as numpy's "nearest" method and
//     haproxystats' CPU percentiles compute it, q × (n − 1) in float64 with q the double
//     nearest NN/100, so that one rule holds everywhere; a handful of exact halves therefore
//     round the other way than exact arithmetic would (n = 46, p70: 31, not 32);
//   - a series with no finite value at all emits nothing, and a result that overflows float64
//     (a sum or deviation of huge values) is not written.
//
// # Policies
//
// Policies are chosen per source by metric-name glob, first match wins:
// `aggregate = <functions>` is the default for unmatched series and
// `aggregate.<glob> = <functions>` applies to matching ones, e.g. `aggregate.*_bytes = sum max
// p95`; `none` emits no aggregate (per-instance lines are still written). The glob (path.Match
// syntax) matches the sample's Family (a histogram's or summary's family name, else the
// sample's name). Defaults: counters, gauges and untyped series get `sum`; summary quantile
// series get `max` unless a rule matches the family (the `aggregate` default does not apply to
// them: averaging or summing quantiles is wrong, the largest is at least an honest bound);
// summary and histogram `_sum`/`_count` are always summed. Rules do not apply to histogram
// buckets: see Histograms.
//
// # Histograms
//
// Histograms (family + labels) are merged by bucket: the cumulative counts are summed per
// bound across the instances, bounds compared as numbers (le="1.0" and le="1" are one
// bucket), and the quantiles HistogramQuantiles (default p50 p90 p99) are derived from the
// merged buckets by Prometheus' histogram_quantile rules:
//
//   - the buckets are sorted by bound (they may come in any order);
//   - without a +Inf bucket, or with fewer than two buckets, there is no quantile;
//   - counts within a relative 1e-12 of the previous bucket's are set to it (float error), and
//     the counts are then made monotonic by their running maximum, as Prometheus does;
//   - with a +Inf count of 0 there is no quantile;
//   - the rank q × count(+Inf) falls in the first bucket whose cumulative count reaches it;
//     inside it the value is interpolated linearly between the previous bound (0 for the first
//     bucket if its bound is positive) and its bound; if the first bucket's bound is ≤ 0 that
//     bound is the value; a rank in the +Inf bucket gives the highest finite bound.
//
// An instance lacking a bound its peers have contributes nothing at that bound, exactly as
// Prometheus' histogram_quantile(q, sum by (le) (x_bucket)) does; the monotonic fix-up then
// lifts that bucket to at least the count below it. Quantiles are never averaged. The
// histogram's `_count` and `_sum` are summed; bucket lines are written only with
// HistogramBuckets, their counts as summed (before the fix-ups).
//
// # Paths
//
// A line is `<path> <value> <timestamp>`; the timestamp is the Chunker's (the snapshot's).
// Paths are `<prefix>.<metric-name>[.<label>.<value>]…`: the prefix ("<namespace>[.<host>].
// <source-name>") is used as given; labels are sorted by name; every component (metric name,
// label name, label value) is sanitised by metric.Names{Strict: true}: [A-Za-z0-9_:#-] kept,
// any other rune '_' (so a dot in a label value never makes a component), bounded in length
// (MaxLength, default 255, longer names end in a hash), and an empty component becomes '_'. A
// label with an empty value is no label at all, as in Prometheus: `x{a=""}` is the series `x`.
//
// `sum` is written at that bare path, every other function at `<path>.<function>` (.avg .min
// .max .count .stddev .p95), the function always the last component; a policy without sum
// writes nothing at the bare path. A summary quantile is part of its series:
// `<path>.quantile.<q>.max` (q formatted as metric.AppendFloat then sanitised, 0.99 → 0_99).
// Histogram quantiles are at `<prefix>.<family>[.<label>.<value>]….p99`, counts and sums at
// `<prefix>.<family>_count…` and `<prefix>.<family>_sum…`, buckets at
// `<prefix>.<family>_bucket[.<label>.<value>]….le.<bound>` with the bound formatted as
// metric.AppendFloat then sanitised: le="1" → `le.1_0`, le="+Inf" → `le.inf`.
//
// PerInstance adds `<prefix>.instance.<instance>.<metric…>` with each instance's own value
// (counters, gauges, untyped, summary quantiles and _sum/_count: the value; histograms: that
// instance's own quantiles from its own buckets); the instance name, given by the caller, is
// sanitised as a component. These lines come instance by instance in the order they were fed,
// each instance's series in the order it gave them: after all aggregates, or, with
// StreamInstances, each instance's as soon as it ends (before the aggregates), so that its
// values need not be kept.
//
// # Tags
//
// GraphiteTags writes Graphite 1.1 tags instead of label components:
// `<prefix>.<metric>[.<function>];label=value;…`, tags sorted by (sanitised) name, the bound
// of a bucket or summary quantile as the tag le or quantile (`le=1.0`, `le=inf`,
// `quantile=0.99`). Per-instance lines get the tag `instance=<name>` instead of the
// `.instance.<name>` path part. A tag name is sanitised like a component (so it has no `;`
// `!` `^` `=` or space); a tag value keeps '.', '/' and printable UTF-8 but maps ';', white
// space, control characters and invalid UTF-8 to '_', a leading '~' to '_', an empty value to
// '_'. Graphite reserves the tag `name` for the path, and `instance` is the per-instance tag:
// labels so named are written as the tags `_name` and `_instance` (on every line, so that the
// aggregate and the per-instance series carry the same tags).
//
// # Order, duplicates, bounds
//
// Output is deterministic: series in first-seen order (instances are fed in a fixed order),
// functions in policy order, a histogram's quantiles at the place of its first bucket, then
// its bucket lines in bound order. A series given twice by one instance (same name and
// labels, same bound) keeps the first value; the others are counted (Duplicates). At most
// MaxSeries distinct series (each bucket and each histogram counting one) are kept per
// snapshot; samples of further series are dropped and counted (Dropped), so a histogram met at
// the bound may keep its _sum and _count while some buckets (and then its quantiles) are
// missing. A line longer than
// MaxLineLength (default metric.DefaultMaxLineLength) is dropped and counted (LongLines).
//
// Different series may still meet in one path once sanitised (`a.b` and `a_b`), and a
// metric named `instance` may meet the per-instance tree; the engine does not detect that.
//
// # Cost
//
// Add interns a series by its canonical key (class, name, sorted labels, bound), built in a
// reused buffer and hashed with hash/maphash into an index of int32 entries, and stages
// (series, value) until EndInstance, so that a broken instance can be discarded whole. Per
// series it keeps count, sum, min, max and Welford's mean and deviation sum. Of an instance's
// values only those of series with a percentile in their policy stay (as staged items) once it
// ends, plus, with PerInstance and without StreamInstances, all of them until Emit. So memory
// is one instance's staged values, the series table, and n values per percentile series.
// Reset keeps every buffer, so that after the first snapshot Add allocates nothing.
package aggregate
