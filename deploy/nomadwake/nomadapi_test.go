package nomadwake

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hashicorp/nomad/api"
)

// TestAPISpeaksNomadsScaleEndpoints: no Nomad server can be installed
// here (Nomad >= 1.7 is not open source), so this checks the requests the
// adapter sends against Nomad's documented HTTP API
// (GET and POST /v1/job/:job_id/scale) on a recording server.
func TestAPISpeaksNomadsScaleEndpoints(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
		body api.ScalingRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Method+" "+r.URL.Path+"?namespace="+r.URL.Query().Get("namespace"))
		switch r.Method {
		case http.MethodGet:
			_ = json.NewEncoder(w).Encode(api.JobScaleStatusResponse{JobID: "campus-app-accra",
				TaskGroups: map[string]api.TaskGroupScaleStatus{"app": {Desired: 0}}})
		default:
			_ = json.NewDecoder(r.Body).Decode(&body)
			_ = json.NewEncoder(w).Encode(api.JobRegisterResponse{})
		}
	}))
	defer srv.Close()
	c, err := api.NewClient(&api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	a := API{Client: c, Namespace: "campus-apps"}
	ctx := context.Background()
	if n, err := a.Count(ctx, "campus-app-accra", "app"); err != nil || n != 0 {
		t.Fatalf("Count = %d, %v; want 0", n, err)
	}
	if _, err := a.Count(ctx, "campus-app-accra", "nope"); err == nil {
		t.Error("Count of a missing group: no error")
	}
	if err := a.Scale(ctx, "campus-app-accra", "app", 1, "campus: wake"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"GET /v1/job/campus-app-accra/scale?namespace=campus-apps",
		"GET /v1/job/campus-app-accra/scale?namespace=campus-apps",
		"PUT /v1/job/campus-app-accra/scale?namespace=campus-apps",
	}
	if len(seen) != len(want) {
		t.Fatalf("requests %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] && !(i == 2 && seen[i] == "POST /v1/job/campus-app-accra/scale?namespace=campus-apps") {
			t.Errorf("request %d = %q, want %q", i, seen[i], want[i])
		}
	}
	if body.Count == nil || *body.Count != 1 || body.Target["Job"] != "campus-app-accra" || body.Target["Group"] != "app" {
		t.Errorf("scale request %+v, want count 1 for campus-app-accra/app", body)
	}
}
