package systemtest

import "time"

// PollInterval is how often Eventually and WaitUntil try again.
const PollInterval = 50 * time.Millisecond

// Eventually calls f until it returns nil or within has passed, and
// returns f's last error (nil on success). f is always called at least
// once, and once more after the deadline has passed unless it succeeded.
func Eventually(within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(PollInterval)
	}
}
