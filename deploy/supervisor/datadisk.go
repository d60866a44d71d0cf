package supervisor

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The data folder's disk (campus dev: the embedded database's SQLite
// files and the registry live there). Its free space is a gauge read at
// every scrape, and a watch logs one ERROR line naming the folder and
// "disk full" when it fills (again every dataFullRepeat while it stays
// full, not a line per failed write) and one INFO line when space is
// back. Writes then work again by themselves: nothing is restarted.

const (
	// MetricDataFreeBytes is a gauge: bytes an unprivileged writer may
	// still write on the disk of the data folder (statfs f_bavail).
	MetricDataFreeBytes = "campus_supervisor_data_free_bytes"
	// MetricDataSizeBytes is a gauge: the size of that disk.
	MetricDataSizeBytes = "campus_supervisor_data_size_bytes"
	// LabelPath is the data folder of the two gauges.
	LabelPath = "path"
)

const (
	// dataFullBelow: less free than this is "full" for the log (a
	// SQLite commit needs a few pages; a write of a school rarely fits in
	// less than this).
	dataFullBelow  = 1 << 20
	dataCheckEvery = 5 * time.Second
	dataFullRepeat = 10 * time.Minute
)

// dataDiskCollectors are the gauges of the data folder's disk.
func dataDiskCollectors(dir string) []prometheus.Collector {
	labels := prometheus.Labels{LabelPath: dir}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricDataFreeBytes, ConstLabels: labels,
			Help: "Free bytes on the disk holding the data folder (the embedded database and registry)."},
			func() float64 { free, _, _ := diskSpace(dir); return float64(free) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricDataSizeBytes, ConstLabels: labels,
			Help: "Size of the disk holding the data folder."},
			func() float64 { _, size, _ := diskSpace(dir); return float64(size) }),
	}
}

// watchDataDisk logs when the data folder's disk fills and when space is
// back, until ctx ends.
func watchDataDisk(ctx context.Context, dir string, log *slog.Logger) {
	t := time.NewTicker(dataCheckEvery)
	defer t.Stop()
	var fullSince, lastLine time.Time
	for {
		free, size, err := diskSpace(dir)
		now := time.Now()
		switch {
		case err != nil:
		case free < dataFullBelow && (fullSince.IsZero() || now.Sub(lastLine) >= dataFullRepeat):
			if fullSince.IsZero() {
				fullSince = now
			}
			lastLine = now
			log.Error("disk full: the disk holding the data folder has no space left; the schools' saves fail, their pages keep answering. Free space there (or make the disk larger); nothing needs a restart",
				"data", dir, "free_bytes", free, "size_bytes", size, "full_since", fullSince.UTC().Format(time.RFC3339))
		case free >= dataFullBelow && !fullSince.IsZero():
			log.Info("disk space back: the data folder's disk has room again; saves work", "data", dir,
				"free_bytes", free, "was_full_for", now.Sub(fullSince).Round(time.Second).String())
			fullSince = time.Time{}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
