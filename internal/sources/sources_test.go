package sources

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/statspipe/statspipe/internal/config"
	"github.com/statspipe/statspipe/internal/metric"
	"github.com/statspipe/statspipe/internal/process"
	"github.com/statspipe/statspipe/internal/pull"
)

type nopProvider struct{ info pull.ProviderInfo }

func (p nopProvider) Info() pull.ProviderInfo                        { return p.info }
func (p nopProvider) Sources(context.Context) ([]pull.Source, error) { return nil, nil }

type nopFormat struct{ id int }

func (nopFormat) Process(string, int64, metric.FlushFunc) error { return nil }

// registryRuns names each run's kind: the registry is the process's, and -count runs the test
// again in the same process.
var registryRuns int

func TestRegistry(t *testing.T) {
	made := 0
	registryRuns++
	kind := "testkind" + strconv.Itoa(registryRuns)
	Register(Kind{
		Name: kind,
		NewProvider: func(cfg *config.Config, src *config.Source, log *slog.Logger) (pull.Provider, error) {
			if src.Name == "off" {
				return nil, nil
			}
			return nopProvider{Info(src)}, nil
		},
		NewFormat: func(*config.Config, *slog.Logger) (func() process.Format, error) {
			return func() process.Format { made++; return nopFormat{made} }, nil
		},
	})
	defer func() {
		if recover() == nil {
			t.Fatal("a second registration of a kind did not panic")
		}
	}()
	log := slog.New(slog.DiscardHandler)
	cfg := &config.Config{Sources: []config.Source{{Name: "a", Kind: kind, AllowPartial: true}, {Name: "off", Kind: kind}}}
	ps, err := Providers(cfg, log)
	if err != nil || len(ps) != 1 || ps[0].Info().Source != "a" || !ps[0].Info().AllowPartial || ps[0].Info().TopLevel {
		t.Fatalf("providers %v %v", ps, err)
	}
	if _, err := Providers(&config.Config{Sources: []config.Source{{Name: "x", Kind: "nokind"}}}, log); err == nil || !strings.Contains(err.Error(), `"nokind"`) {
		t.Fatalf("unknown kind: %v", err)
	}
	formats, err := Formats(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	w1, w2 := formats(), formats()
	f1, ok := w1(kind)
	f1again, _ := w1(kind)
	f2, _ := w2(kind)
	if !ok || f1 != f1again || f1 == f2 || made != 2 {
		t.Fatalf("one Format per worker and kind: %v %v %v made=%d", f1, f1again, f2, made)
	}
	if _, ok := w1("nokind"); ok {
		t.Fatal("a kind without a processor was found")
	}
	Register(Kind{Name: kind})
}
