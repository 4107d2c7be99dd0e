package daemon

import (
	"log/slog"
	"slices"
	"sync"

	"github.com/costar-project/costar/portprovider/iscsi/radius"
)

// radiusClients keeps one RADIUS client per configuration, so a server
// going down is logged once, not at every login, and a changed server or
// secret (itadm modify-defaults -r/-D) takes effect at the next login.
type radiusClients struct {
	log *slog.Logger

	mu      sync.Mutex
	servers []string
	secret  string
	cur     *radius.Client
}

func (r *radiusClients) client(servers []string, secret string) *radius.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil || r.secret != secret || !slices.Equal(r.servers, servers) {
		r.servers, r.secret = slices.Clone(servers), secret
		r.cur = &radius.Client{
			Servers:       r.servers,
			Secret:        []byte(secret),
			NASIdentifier: "costar",
			Log:           r.log,
		}
	}
	return r.cur
}
