package plan

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flexiflow/flexiflow/stream"
)

// CalibrateOptions tune Calibrate.
type CalibrateOptions struct {
	// Rounds is how many of each measurement to take (default 100).
	Rounds int
	// Topic prefixes the topics it writes (default flexiflow.calibrate).
	Topic string
	// RecordBytes is the size of each record a transaction produces
	// (default 1024: a batch of a few dozen small records).
	RecordBytes int
	// Gap is how long a paused transaction waits between polling and
	// producing (default 5ms).
	Gap time.Duration
	// Load is how long each shape of the broker's CPU measurement runs
	// (default 2s). The broker's CPU is measured only when it runs on
	// this machine (every broker address a loopback one) and the
	// machine's CPU time is readable (Linux); a negative Load skips it.
	Load time.Duration
}

// Calibrate measures what the cluster kafka costs a stage: an
// acknowledged produce round trip, how long a committed record takes to
// reach a waiting read_committed consumer, and a transaction's flush and
// commit (offsets included) the way a stage commits: after a pause with
// 1 and with 512 records of o.RecordBytes, with a record in each of 64
// partitions, and producing at once after the previous commit. It writes
// to topics of its own.
func Calibrate(ctx context.Context, kafka stream.Config, o CalibrateOptions) (Broker, error) {
	if o.Rounds <= 0 {
		o.Rounds = 100
	}
	if o.Gap <= 0 {
		o.Gap = 5 * time.Millisecond
	}
	if o.RecordBytes <= 0 {
		o.RecordBytes = 1024
	}
	value := make([]byte, o.RecordBytes)
	if o.Topic == "" {
		o.Topic = "flexiflow.calibrate"
	}
	in, out := o.Topic+".in", o.Topic+".out64"
	if err := stream.EnsureTopics(ctx, kafka, 1, in); err != nil {
		return Broker{}, fmt.Errorf("calibrating: %w", err)
	}
	if err := stream.EnsureTopics(ctx, kafka, calibrationPartitions, out); err != nil {
		return Broker{}, fmt.Errorf("calibrating: %w", err)
	}
	prod, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.ProducerLinger(0), kgo.DefaultProduceTopic(in))...)
	if err != nil {
		return Broker{}, err
	}
	defer prod.Close()
	cons, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return Broker{}, err
	}
	defer cons.Close()
	// The consumer's first fetch positions it at the end.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	cons.PollFetches(wctx)
	cancel()

	var produce, fetch []float64
	for i := 0; i < o.Rounds; i++ {
		t0 := time.Now()
		seen := make(chan time.Time, 1)
		go func() {
			for {
				fs := cons.PollFetches(ctx)
				if ctx.Err() != nil || fs.IsClientClosed() {
					seen <- time.Time{}
					return
				}
				if fs.NumRecords() > 0 {
					seen <- time.Now()
					return
				}
			}
		}()
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("calibrate")}).FirstErr(); err != nil {
			return Broker{}, fmt.Errorf("calibrating: producing to %s: %w", in, err)
		}
		acked := time.Now()
		at := <-seen
		if at.IsZero() {
			return Broker{}, ctx.Err()
		}
		produce = append(produce, ms(acked.Sub(t0)))
		fetch = append(fetch, max(0, ms(at.Sub(acked))))
	}

	// Transactions as a stage makes them: poll, produce, flush, commit;
	// once producing a moment after the poll (as a stage that waits for
	// its batches' results does) with 1 and 512 records and to 64
	// partitions, and once
	// producing at once (results that were ready), when the broker may
	// still be writing the previous transaction's markers and the client
	// retries after a backoff.
	sess, err := kgo.NewGroupTransactSession(append(kafka.TransactOpts(o.Topic, o.Topic+"-"+fmt.Sprint(time.Now().UnixNano()), in),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return Broker{}, err
	}
	defer sess.Close()
	commit := func(n, parts int, gap time.Duration) ([]float64, error) {
		var took []float64
		rounds := o.Rounds/2 + 1
		if gap == 0 {
			// Back to back: the next record is already fetched when the
			// commit ends, as a stage's next batches are.
			var recs []*kgo.Record
			for range rounds {
				recs = append(recs, &kgo.Record{Value: []byte("calibrate")})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return nil, err
			}
		}
		for i := 0; i < rounds; i++ {
			if gap > 0 {
				if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("calibrate")}).FirstErr(); err != nil {
					return nil, err
				}
			}
			for got := 0; got == 0; {
				fs := sess.PollRecords(ctx, 1)
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				got = fs.NumRecords()
			}
			if err := sess.Begin(); err != nil {
				return nil, err
			}
			time.Sleep(gap)
			t0 := time.Now()
			var perr error
			var mu sync.Mutex
			for j := range n {
				sess.Produce(ctx, &kgo.Record{Topic: out, Partition: int32(j % parts), Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						perr = err
						mu.Unlock()
					}
				})
			}
			if err := sess.Client().Flush(ctx); err != nil {
				return nil, err
			}
			if perr != nil {
				return nil, fmt.Errorf("calibrating: producing to %s: %w", out, perr)
			}
			if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
				return nil, fmt.Errorf("calibrating: committing a transaction: %w", err)
			}
			if i > 0 { // the first adds the partitions to the session
				took = append(took, ms(time.Since(t0)))
			}
		}
		return took, nil
	}
	paused, err := commit(1, 1, o.Gap)
	if err != nil {
		return Broker{}, err
	}
	many, err := commit(calibrationRecords, 1, o.Gap)
	if err != nil {
		return Broker{}, err
	}
	spread, err := commit(calibrationPartitions, calibrationPartitions, o.Gap)
	if err != nil {
		return Broker{}, err
	}
	backToBack, err := commit(1, 1, 0)
	if err != nil {
		return Broker{}, err
	}
	// Means, not medians: what a further record or partition adds shows
	// mostly in the slow commits.
	one, big, wide := NewDist(paused), NewDist(many), NewDist(spread)
	perRecord := max(0, (big.Mean-one.Mean)/float64(calibrationRecords-1))
	var cpu *BrokerCPU
	if o.Load >= 0 && Local(kafka.Brokers) {
		if o.Load == 0 {
			o.Load = 2 * time.Second
		}
		if cpu, err = calibrateCPU(ctx, kafka, out, value, o.Load); err != nil {
			return Broker{}, err
		}
	}
	return Broker{CPU: cpu,
		CommitMs: one, CommitPerRecordMs: perRecord, CommitBackToBackMs: NewDist(backToBack),
		CommitPerPartitionMs: max(0, (wide.Mean-one.Mean-float64(calibrationPartitions-1)*perRecord)/float64(calibrationPartitions-1)),
		ProduceMs:            NewDist(produce), FetchMs: NewDist(fetch),
		Measured: fmt.Sprintf("calibrated on %s at %s (%d rounds)", strings.Join(kafka.Brokers, ","), time.Now().UTC().Format(time.RFC3339), o.Rounds),
	}, nil
}

// Local says whether every broker address is a loopback one: the broker
// runs on this machine and shares its cores.
func Local(brokers []string) bool {
	for _, b := range brokers {
		host, _, err := net.SplitHostPort(b)
		if err != nil {
			host = b
		}
		if host == "localhost" {
			continue
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return len(brokers) > 0
}

// calibrateCPU measures the broker's CPU per transaction, per produce
// request, per partition's records in a request and per partition written:
// transactional producers commit back to back in five shapes (one request
// or several in a row, to one partition or to many, or to a new partition
// each), while the machine's CPU outside this process is read
// before and after; what it spends when idle is taken off. It returns
// nil when the machine's CPU time is not readable.
func calibrateCPU(ctx context.Context, kafka stream.Config, topic string, value []byte, load time.Duration) (*BrokerCPU, error) {
	others := func() (time.Duration, bool) {
		m, ok := MachineCPU()
		return m - ProcessCPU(), ok
	}
	o0, ok := others()
	if !ok {
		return nil, nil
	}
	idleFor := load / 2
	select {
	case <-time.After(idleFor):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	o1, _ := others()
	idle := float64(o1-o0) / float64(idleFor) // cores busy outside this process at rest
	const producers = 8
	clients := make([]*kgo.Client, producers)
	for i := range clients {
		c, err := kgo.NewClient(append(kafka.ClientOpts(), kgo.ProducerLinger(0), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.TransactionalID(fmt.Sprintf("%s-cpu-%d-%d", topic, time.Now().UnixNano(), i)))...)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients[i] = c
	}
	// perTxn runs the producers for load, each committing transactions of
	// n records spread over parts partitions, and gives the core-ms the
	// broker spent per transaction.
	perTxn := func(parts, rounds int, spread bool) (float64, error) {
		lctx, cancel := context.WithTimeout(ctx, load)
		defer cancel()
		var wg sync.WaitGroup
		var mu sync.Mutex
		txns := 0
		var firstErr error
		b0, _ := others()
		t0 := time.Now()
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for lctx.Err() == nil {
					if err := c.BeginTransaction(); err != nil {
						mu.Lock()
						firstErr = cmp.Or(firstErr, err)
						mu.Unlock()
						return
					}
					var err error
					for r := range rounds {
						for j := range parts {
							if spread { // a partition new to the transaction each round
								j = r
							}
							c.Produce(ctx, &kgo.Record{Partition: int32(j), Value: value}, nil)
						}
						if err = c.Flush(ctx); err != nil {
							break
						}
					}
					if err == nil {
						err = c.EndTransaction(ctx, kgo.TryCommit)
					}
					mu.Lock()
					if err != nil {
						firstErr = cmp.Or(firstErr, err)
					} else {
						txns++
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		b1, _ := others()
		if firstErr != nil {
			return 0, fmt.Errorf("calibrating the broker's CPU: %w", firstErr)
		}
		if txns == 0 {
			return 0, fmt.Errorf("calibrating the broker's CPU: no transaction committed in %s", load)
		}
		spent := float64(b1-b0)/float64(time.Millisecond) - idle*ms(time.Since(t0))
		return max(0, spent) / float64(txns), nil
	}
	// cost(partitions p, rounds r) = txn + request·r + append·p·r + partition·p,
	// four shapes, four unknowns.
	const P, R = float64(cpuPartitions), float64(cpuRounds)
	var c [4]float64
	for i, shape := range [4][2]int{{1, 1}, {1, cpuRounds}, {cpuPartitions, 1}, {cpuPartitions, cpuRounds}} {
		var err error
		if c[i], err = perTxn(shape[0], shape[1], false); err != nil {
			return nil, err
		}
	}
	// And a transaction that adds a partition to itself each round: the
	// client adds them (AddPartitionsToTxn) before the request that
	// writes to them, and the coordinator logs each addition.
	spread, err := perTxn(1, cpuPartitions, true)
	if err != nil {
		return nil, err
	}
	app := max(0, ((c[3]-c[2])-(c[1]-c[0]))/(R-1)/(P-1))
	req := max(0, (c[1]-c[0])/(R-1)-app)
	part := max(0, (c[2]-c[0])/(P-1)-app)
	txn := max(0, c[0]-req-app-part)
	add := max(0, (spread-txn-P*(req+app+part))/P)
	return &BrokerCPU{TxnMs: txn, RequestMs: req, AppendMs: app, PartitionMs: part, AddMs: add,
		Cores: runtime.NumCPU(), IdleCores: max(0, idle)}, nil
}

// cpuRounds and cpuPartitions shape the transactions that measure the
// broker's CPU per request and per partition.
const (
	cpuRounds     = 16
	cpuPartitions = 32
)

// calibrationPartitions is how many partitions the transaction that
// measures the cost of each further partition writes to (a stage's
// transaction writes to several topics' partitions); calibrationRecords
// how many records the one that measures each further record's.
const (
	calibrationPartitions = 64
	calibrationRecords    = 512
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
