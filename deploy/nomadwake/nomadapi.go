package nomadwake

import (
	"context"
	"fmt"

	"github.com/hashicorp/nomad/api"
)

// API is the Scaler over Nomad's HTTP API (github.com/hashicorp/nomad/api,
// MPL-2.0): the job scale status for Count, the job scale endpoint for
// Scale. Its client's token needs only "read-job" and "scale-job" on
// Namespace.
type API struct {
	Client    *api.Client
	Namespace string // "" for the client's default
}

// Count implements Scaler: the desired count of job's group.
func (a API) Count(ctx context.Context, job, group string) (int, error) {
	st, _, err := a.Client.Jobs().ScaleStatus(job, (&api.QueryOptions{Namespace: a.Namespace}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("nomad: scale status of %s: %w", job, err)
	}
	tg, ok := st.TaskGroups[group]
	if !ok {
		return 0, fmt.Errorf("nomad: job %s has no group %q", job, group)
	}
	return tg.Desired, nil
}

// Scale implements Scaler.
func (a API) Scale(ctx context.Context, job, group string, count int, reason string) error {
	_, _, err := a.Client.Jobs().Scale(job, group, &count, reason, false, nil,
		(&api.WriteOptions{Namespace: a.Namespace}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("nomad: scale %s/%s to %d: %w", job, group, count, err)
	}
	return nil
}
