package supervisor

import (
	"bytes"
	"strings"
	"testing"
)

// recorder keeps each Write as one element.
type recorder struct{ writes []string }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func TestLineWriterPassesWholeLines(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	tests := []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"one line", []string{"a\n"}, []string{"a\n"}},
		{"split line", []string{"he", "llo", "\n"}, []string{"hello\n"}},
		{"two lines in one write", []string{"a\nb\n"}, []string{"a\n", "b\n"}},
		{"partial last line flushed with newline", []string{"a\nb"}, []string{"a\n", "b\n"}},
		{"over-long line cut", []string{long}, []string{long + "\n"}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			lw := &lineWriter{out: &syncWriter{w: rec}}
			for _, c := range tt.chunks {
				if n, err := lw.Write([]byte(c)); n != len(c) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			lw.flush()
			if len(rec.writes) != len(tt.want) {
				t.Fatalf("writes %q, want %q", rec.writes, tt.want)
			}
			for i := range tt.want {
				if !bytes.Equal([]byte(rec.writes[i]), []byte(tt.want[i])) {
					t.Errorf("write %d = %q, want %q", i, rec.writes[i], tt.want[i])
				}
			}
		})
	}
}
