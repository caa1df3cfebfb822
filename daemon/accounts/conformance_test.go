package accounts_test

import (
	"path/filepath"
	"testing"

	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/daemon/accounts/accountstest"
)

// TestConformance runs the store suite that every accounts.Store passes
// (the JetStream one in daemon/jsstore too) on the memory and file stores.
func TestConformance(t *testing.T) {
	const markers = 5
	defer accounts.SetMarkerLimit(markers)()
	t.Run("memory", func(t *testing.T) {
		accountstest.Run(t, accountstest.Suite{
			Open:        func(*testing.T) accounts.Store { return accounts.NewMemoryStore() },
			MarkerLimit: markers,
		})
	})
	t.Run("file", func(t *testing.T) {
		accountstest.Run(t, accountstest.Suite{
			Open: func(t *testing.T) accounts.Store {
				s, err := accounts.OpenFileStore(filepath.Join(t.TempDir(), "accounts.db"))
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			MarkerLimit: markers,
		})
	})
}
