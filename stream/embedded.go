package stream

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-protocol broker (franz-go's kfake). It
// keeps data in memory and is meant for demos, tests and trying FlexiFlow
// out; it is not a replacement for a Kafka cluster.
type Embedded struct {
	cluster *kfake.Cluster
}

// StartEmbedded starts a single-node embedded broker listening on listen
// ("127.0.0.1:0" picks a free port).
func StartEmbedded(listen string, partitions int) (*Embedded, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return nil, fmt.Errorf("embedded broker: listen address %q is not host:port: %w", listen, err)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, listen) }),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded broker on %s: %w", listen, err)
	}
	return &Embedded{cluster: c}, nil
}

// Addrs are the broker addresses clients should use.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the broker; its data is gone.
func (e *Embedded) Close() { e.cluster.Close() }
