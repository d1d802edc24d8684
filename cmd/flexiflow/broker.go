package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/flexiflow/flexiflow/stream"
)

func newBrokerCmd(g *globals) *cobra.Command {
	var listen string
	var partitions int
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka-protocol broker on its own",
		Long: `Run the embedded broker (franz-go's kfake, in memory) so other processes and
tools (flexiflow stage, kcat, any Kafka client) can connect to it. Data lives
in memory and is gone when the broker stops (Ctrl-C).

Example:
  flexiflow broker --listen 127.0.0.1:9092 &
  flexiflow stage --workflow wf.yaml --step classify --brokers 127.0.0.1:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger("info")
			if err != nil {
				return err
			}
			b, err := stream.StartEmbedded(listen, partitions)
			if err != nil {
				return err
			}
			defer b.Close()
			log.Info("embedded broker listening", zap.Strings("addrs", b.Addrs()))
			fmt.Fprintf(cmd.OutOrStdout(), "embedded broker listening on %s (Ctrl-C to stop)\n", b.Addrs()[0])
			<-cmd.Context().Done()
			log.Info("embedded broker stopping")
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9092", "host:port to listen on")
	cmd.Flags().IntVar(&partitions, "partitions", 3, "partitions of topics created automatically")
	return cmd
}
