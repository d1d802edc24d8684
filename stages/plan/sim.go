package plan

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
)

// Config is one deployment of a workflow: the partitions of its topics
// and, per step, its consumers, the workers of each and the batches a
// transaction takes at most (--max-poll).
type Config struct {
	Partitions int          `json:"partitions"`
	Steps      []StepConfig `json:"steps"`
}

// StepConfig is one step's part of a Config.
type StepConfig struct {
	Name      string `json:"name"`
	Consumers int    `json:"consumers"`
	Workers   int    `json:"workers"`
	MaxPoll   int    `json:"max_poll"`
}

// Check says whether c deploys a workflow of the named steps: at least
// one partition, and each step (in order; a step without a name is taken
// to be the one at its place) with at least one consumer, worker and
// batch per transaction.
func (c Config) Check(steps []string) error {
	if c.Partitions < 1 {
		return fmt.Errorf("partitions must be at least 1, got %d", c.Partitions)
	}
	if len(c.Steps) != len(steps) {
		return fmt.Errorf("the configuration has %d steps and the workflow %d", len(c.Steps), len(steps))
	}
	for i, sc := range c.Steps {
		if sc.Name != "" && sc.Name != steps[i] {
			return fmt.Errorf("the configuration's step %d is %q and the workflow's %q", i+1, sc.Name, steps[i])
		}
		if sc.Consumers < 1 || sc.Workers < 1 || sc.MaxPoll < 1 {
			return fmt.Errorf("step %s: consumers, workers and max_poll must be at least 1, got %d, %d and %d",
				steps[i], sc.Consumers, sc.Workers, sc.MaxPoll)
		}
	}
	return nil
}

// Cores is what c asks for: consumers × cores each.
func (c Config) Cores(perConsumer float64) float64 {
	n := 0
	for _, s := range c.Steps {
		n += s.Consumers
	}
	return float64(n) * perConsumer
}

// String is c in one line.
func (c Config) String() string {
	s := fmt.Sprintf("partitions=%d", c.Partitions)
	for _, st := range c.Steps {
		s += fmt.Sprintf(" %s:%dx%dw/%dp", st.Name, st.Consumers, st.Workers, st.MaxPoll)
	}
	return s
}

// Workload is what the simulated pipeline is fed.
type Workload struct {
	// Batches is how many batches are fed (default 2000).
	Batches int `json:"batches"`
	// Rate is batches/s arriving evenly spaced; 0 means all are waiting
	// at the start (a backlog, a replay, a catch-up after an outage).
	Rate float64 `json:"rate,omitempty"`
	// EventRate, for a workflow with a source, is events/s arriving on
	// the source topic instead of Rate: the source closes a batch at
	// max_records events or after linger, whichever comes first, and
	// commits it to the first step; a batch's latency then counts from
	// its first event.
	EventRate float64 `json:"event_rate,omitempty"`
	// RecordsPerBatch is the records in each batch (default: the
	// profile's).
	RecordsPerBatch float64 `json:"records_per_batch,omitempty"`
	// CoresPerConsumer is each consumer's cores, shared by the calls of
	// models that compute rather than wait (default 1).
	CoresPerConsumer float64 `json:"cores_per_consumer,omitempty"`
	// SharedCores, when positive, puts every consumer's stage work on
	// one set of that many cores (one process, as plan validate runs
	// them) instead of CoresPerConsumer each.
	SharedCores float64 `json:"shared_cores,omitempty"`
	// BrokerCores is the cores the broker spends on this workflow's
	// transactions, when the profile has the broker's CPU (Broker.CPU).
	// With SharedCores and no BrokerCores the broker runs on those cores
	// beside the stages (it was calibrated on this machine); with neither
	// its CPU is not simulated.
	BrokerCores float64 `json:"broker_cores,omitempty"`
	// Seed seeds the simulation: the same seed, configuration and
	// profile always give the same prediction.
	Seed uint64 `json:"seed,omitempty"`
}

func (w *Workload) defaults(p *Profile) (ingestMs float64) {
	if w.Batches <= 0 {
		w.Batches = 2000
	}
	if in := p.Ingest; in != nil && w.EventRate > 0 {
		every := float64(in.MaxRecords) / w.EventRate * 1000
		if in.LingerMs > 0 {
			every = min(every, in.LingerMs)
		}
		w.Rate = 1000 / every
		w.RecordsPerBatch = max(1, min(float64(in.MaxRecords), w.EventRate*every/1000))
		// The first event waits for the batch to close, then for the
		// source's commit and the first step's fetch.
		ingestMs = every + p.Broker.CommitMs.Mean + p.Broker.FetchMs.Mean
	}
	if w.RecordsPerBatch <= 0 {
		w.RecordsPerBatch = p.RecordsPerBatch
	}
	if w.CoresPerConsumer <= 0 {
		w.CoresPerConsumer = 1
	}
	return ingestMs
}

// Prediction is what the simulator says a Config does.
type Prediction struct {
	// BatchesPerS is delivered batches per second, from the first
	// delivered batch to the last.
	BatchesPerS float64 `json:"batches_per_s"`
	// P50Ms and P99Ms are per delivered batch, from its arrival on the
	// first step's input to the moment a consumer of the output sees it.
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	Delivered    int     `json:"delivered"`
	DeadLettered int     `json:"dead_lettered"`
	// Sustained says, when batches arrive at a rate, that the pipeline
	// keeps up: the last tenth of the batches to arrive wait no longer
	// than the first tenth (within 50%, or 100 ms); a pipeline that
	// falls behind makes each batch wait longer than the one before.
	Sustained bool `json:"sustained"`
	// CPUShare is, when the consumers share cores (Workload.SharedCores),
	// the share of them spent on stage work.
	CPUShare float64 `json:"cpu_share,omitempty"`
	// BrokerCPUShare is, when the profile has the broker's CPU, the share
	// of the broker's cores (Workload.BrokerCores, or the shared ones)
	// its work on the transactions took.
	BrokerCPUShare float64 `json:"broker_cpu_share,omitempty"`
	// Bottleneck is the step that limits the pipeline; "input" when none
	// is busy (the batches arrive slower than it serves them), "cpu" when
	// the shared cores are, "broker" when the broker's are.
	Bottleneck string           `json:"bottleneck"`
	Steps      []StepPrediction `json:"steps"`
}

// StepPrediction is one step's part of a Prediction.
type StepPrediction struct {
	Name string `json:"name"`
	// Consumers is how many of the step's consumers own partitions.
	Consumers int `json:"consumers"`
	// Utilization is the share of the step's worker time spent on calls
	// (or waiting for a model's slot); CommitShare the share of each
	// consumer's time spent flushing and committing.
	Utilization float64 `json:"utilization"`
	CommitShare float64 `json:"commit_share"`
	// CPUShare is the share of the step's consumers' cores spent on
	// stage work, when the profile has the stage's CPU per attempt and
	// each consumer has its own cores.
	CPUShare float64 `json:"cpu_share,omitempty"`
	// BatchesPerTxn is the mean batches (and reports) per transaction.
	BatchesPerTxn float64 `json:"batches_per_txn"`
	// AttemptsPerBatch is the mean attempts per batch.
	AttemptsPerBatch float64 `json:"attempts_per_batch"`
	// Limit is what holds the step back: workers, transactions,
	// max_concurrency, server, or none.
	Limit string `json:"limit"`
}

// Simulator runs configurations of one profiled workflow under one
// workload. It keeps its buffers between runs; it is not safe for
// concurrent use.
type Simulator struct {
	p     *Profile
	w     Workload
	steps []simStep

	rng       *rand.Rand
	items     []item
	cons      []consumer
	heap      []event
	seq       uint64
	lat       []float64
	routes    []route
	byArrival []arrived
	hosts     []host
	broker    int     // index in hosts of the broker's cores; -1 leaves its CPU out
	ingestMs  float64 // what the source adds to a batch's latency
}

// host is the cores a consumer's stage work runs on: its own, or, when
// the workload shares cores, the one process's.
type host struct {
	cores, busy int
	queue       []job
	used        float64 // core-milliseconds of work done
	brokerUsed  float64 // of which the broker's
	// brokerQueued is how many of the queue's first jobs are the
	// broker's, which go ahead of the stages' work.
	brokerQueued int
}

// job is ms of work for a core: an attempt's stage work (item ≥ 0), the
// broker's on a consumer's commit (item commitJob), on one of its
// requests (item requestJob), or on a produce request that leaves now
// (item sendJob: the request returns once the broker has done it).
type job struct {
	cons, item int32
	ms         float64
}

const (
	commitJob  = -1
	requestJob = -2
	sendJob    = -3
)

type arrived struct{ at, lat float64 }

type simStep struct {
	models  []simModel
	cascade []int8    // model indices, the order after the first choice
	first   []float64 // cumulative first-choice weights, by cascade position
	fb      bool      // reads feedback reports
}

type simModel struct {
	lat      Dist
	shift    float64 // per-record growth at the workload's records per batch
	pass     float64
	cap      int // per consumer (max_concurrency, or cores for computing models)
	capacity int // the server's, across consumers
	inflight int // on the server
	queue    []int32
}

type item struct {
	arrive, startT float64
	part           int32
	step           int8
	model          int8
	attempts       int8
	tried          uint32
	done, pass, fb bool
	cons           int32
}

type consumer struct {
	step, workers, maxPoll int
	busy                   int
	fetched                []int32
	start, take, pollEnd   int
	txnFrom                int
	state                  uint8
	inflight               []int
	queues                 [][]int32
	// statistics
	hold, commit float64
	commitAt     float64
	lastEnd      float64 // when the previous commit ended
	// Fetching as a Kafka client does: one fetch at a time, the next
	// only once the last one's records are all polled. pending holds
	// what is readable on the broker and not fetched yet.
	pending   []route
	fetching  uint8
	fetchAt   float64 // when the broker read the fetch that is out
	host      int     // index in Simulator.hosts
	firstTake float64 // when the open transaction produced its first record

	// The producer, one request in flight: reqBack is when the one out
	// returns, queued whether records wait for the next; commitMs is the
	// open transaction's commit's latency on an idle broker.
	reqBack  float64
	queued   bool
	commitMs float64
	owned    int // partitions it fetches, over its topics
	// parts are the partitions the open transaction writes to, by topic
	// (traces, output, retry, dead-letter); added says the request that
	// goes next has added its new ones already.
	parts [4]uint64
	added bool
	// reqParts are the partitions, by topic, the queued request already
	// has records for: each is appended to once per request.
	reqParts [4]uint64

	first, last    float64
	txns, txnItems int
}

const (
	idle uint8 = iota
	taking
	committing
)

// Fetch states.
const (
	waiting  uint8 = iota // a fetch is out and the broker has nothing for it yet
	inFlight              // a fetch is on its way back with records
	drained               // the last fetch's records are not all polled: no fetch is out
)

type event struct {
	t    float64
	seq  uint64
	kind uint8
	cons int32
	item int32
}

const (
	evVisible uint8 = iota // a record is readable on the broker
	evDone
	evCommit
	evFetch  // a consumer's fetch returns
	evCPU    // an attempt's stage work (decode, rank, encode, trace) is done
	evBroker // the broker's work on a transaction is done
)

// NewSimulator prepares the simulation of p under w.
func NewSimulator(p *Profile, w Workload) (*Simulator, error) {
	ingest := w.defaults(p)
	s := &Simulator{p: p, w: w, ingestMs: ingest}
	for _, sp := range p.Steps {
		st := simStep{fb: sp.Feedback}
		if len(sp.Cascade) == 0 {
			return nil, fmt.Errorf("step %s: the profile has no model to route batches to", sp.Name)
		}
		if len(sp.Cascade) > 32 {
			return nil, fmt.Errorf("step %s: the simulator takes at most 32 models per step", sp.Name)
		}
		var cum float64
		for _, name := range sp.Cascade {
			mp := sp.model(name)
			if mp == nil {
				return nil, fmt.Errorf("step %s: the cascade names model %q, which the profile does not have", sp.Name, name)
			}
			m := simModel{lat: mp.LatencyMs, shift: mp.PerRecordMs * (w.RecordsPerBatch - mp.MeanRecords), pass: mp.Pass,
				cap: mp.MaxConcurrency, capacity: mp.Capacity}
			if !mp.Wait {
				cores := max(1, int(math.Ceil(w.CoresPerConsumer)))
				if m.cap == 0 || m.cap > cores {
					m.cap = cores
				}
			}
			st.cascade = append(st.cascade, int8(len(st.models)))
			st.models = append(st.models, m)
			cum += sp.FirstChoice[name]
			st.first = append(st.first, cum)
		}
		if cum == 0 { // no first choices recorded: the cascade's order
			for i := range st.first {
				st.first[i] = 1
			}
		} else {
			for i := range st.first {
				st.first[i] /= cum
			}
		}
		s.steps = append(s.steps, st)
	}
	return s, nil
}

// Workload is what the simulator feeds, defaults filled in (for a
// workflow with a source fed EventRate, the batches it makes).
func (s *Simulator) Workload() Workload { return s.w }

// Run simulates c and predicts what it does.
func (s *Simulator) Run(c Config) (Prediction, error) {
	if err := s.check(c); err != nil {
		return Prediction{}, err
	}
	s.rng = rand.New(rand.NewPCG(s.w.Seed, 0x9e3779b97f4a7c15))
	s.items = s.items[:0]
	s.heap = s.heap[:0]
	s.lat = s.lat[:0]
	s.byArrival = s.byArrival[:0]
	s.seq = 0
	// Consumers: those of step i that own partitions, in order.
	s.cons = s.cons[:0]
	base := make([]int, len(c.Steps)+1)
	for i, sc := range c.Steps {
		base[i] = len(s.cons)
		for range min(sc.Consumers, c.Partitions) {
			s.cons = append(s.cons, consumer{step: i, workers: sc.Workers, maxPoll: sc.MaxPoll,
				inflight: make([]int, len(s.steps[i].models)), queues: make([][]int32, len(s.steps[i].models)), first: -1, lastEnd: -1e9})
		}
	}
	base[len(c.Steps)] = len(s.cons)
	s.hosts = s.hosts[:0]
	if s.w.SharedCores > 0 {
		s.hosts = append(s.hosts, host{cores: max(1, int(math.Round(s.w.SharedCores)))})
	} else {
		for i := range s.cons {
			s.cons[i].host = i
			s.hosts = append(s.hosts, host{cores: max(1, int(math.Round(s.w.CoresPerConsumer)))})
		}
	}
	s.broker = -1
	if s.p.Broker.CPU != nil {
		switch {
		case s.w.BrokerCores > 0:
			s.broker = len(s.hosts)
			s.hosts = append(s.hosts, host{cores: max(1, int(math.Round(s.w.BrokerCores)))})
		case s.w.SharedCores > 0:
			s.broker = 0
		}
	}
	for i := range s.steps {
		for j := range s.steps[i].models {
			s.steps[i].models[j].inflight = 0
			s.steps[i].models[j].queue = s.steps[i].models[j].queue[:0]
		}
	}
	owner := func(step int, part int32) int32 {
		n := base[step+1] - base[step]
		return int32(base[step] + int(part)%n)
	}
	for st := range c.Steps {
		topics := 2 // input and retry
		if s.steps[st].fb {
			topics++
		}
		for part := range c.Partitions {
			s.cons[owner(st, int32(part))].owned += topics
		}
	}
	// The input: every batch on a partition of the first step's topic.
	s.routes = s.routes[:0]
	for i := 0; i < s.w.Batches; i++ {
		part := int32(s.rng.IntN(c.Partitions))
		if s.w.Rate > 0 {
			at := float64(i) / s.w.Rate * 1000
			s.items = append(s.items, item{arrive: at, part: part, model: -1})
			s.push(at, evVisible, owner(0, part), int32(i))
			continue
		}
		// A backlog: all readable at once.
		s.items = append(s.items, item{part: part, model: -1})
		s.routes = append(s.routes, route{cons: owner(0, part), part: part, id: int32(i)})
	}
	s.deliver(0)
	delivered, dead := 0, 0
	var firstOut, lastOut float64 = -1, 0
	last := len(s.steps) - 1
	for len(s.heap) > 0 {
		ev := s.pop()
		now := ev.t
		cn := &s.cons[ev.cons]
		switch ev.kind {
		case evVisible:
			it := &s.items[ev.item]
			it.cons = ev.cons
			topic := int8(0)
			switch {
			case it.fb:
				topic = 2
			case it.attempts > 0:
				topic = 1
			}
			cn.pending = append(cn.pending, route{topic: topic, part: it.part, id: ev.item, at: now})
			if cn.fetching == waiting {
				// The waiting fetch answers with what became readable now.
				cn.fetching, cn.fetchAt = inFlight, now
				s.push(now+s.p.Broker.FetchMs.at(s.rng.Float64()), evFetch, ev.cons, -1)
			}
		case evFetch:
			if cn.first < 0 {
				cn.first = now
			}
			// A fetch response holds what each partition had, topic by
			// topic, partition by partition.
			// It holds what was readable when the broker read it.
			k := 0
			for k < len(cn.pending) && cn.pending[k].at <= cn.fetchAt {
				k++
			}
			got := cn.pending[:k]
			slices.SortStableFunc(got, func(a, b route) int {
				if a.topic != b.topic {
					return int(a.topic - b.topic)
				}
				return int(a.part - b.part)
			})
			for _, r := range got {
				cn.fetched = append(cn.fetched, r.id)
			}
			cn.pending = append(cn.pending[:0], cn.pending[k:]...)
			cn.fetching = drained
			if s.broker >= 0 {
				// A read_committed fetch: each partition it asks for is
				// read up to its last stable offset.
				s.run(s.broker, job{cons: ev.cons, item: requestJob, ms: s.p.Broker.CPU.RequestMs + s.p.Broker.CPU.AppendMs*float64(cn.owned)}, now)
			}
		case evDone:
			s.finish(ev.cons, ev.item, now)
		case evCPU, evBroker:
			s.cpuDone(ev.cons, ev.item, now)
		case evCommit:
			cn.commit += now - cn.commitAt
			s.routes = s.routes[:0]
			for k := cn.txnFrom; k < cn.pollEnd; k++ {
				id := cn.fetched[k]
				it := &s.items[id]
				if it.fb {
					continue
				}
				st := int(it.step)
				switch {
				case it.pass && st == last:
					delivered++
					t := now + s.p.Broker.FetchMs.at(s.rng.Float64())
					if firstOut < 0 || t < firstOut {
						firstOut = t
					}
					lastOut = max(lastOut, t)
					s.lat = append(s.lat, t-it.arrive+s.ingestMs)
					s.byArrival = append(s.byArrival, arrived{at: it.arrive, lat: t - it.arrive})
					s.feedback(it.part, st, owner)
				case it.pass:
					it.step++
					it.attempts, it.tried, it.model, it.done = 0, 0, -1, false
					s.routes = append(s.routes, route{cons: owner(st+1, it.part), topic: 0, part: it.part, id: id})
				case s.untried(it):
					it.done = false
					s.routes = append(s.routes, route{cons: owner(st, it.part), topic: 1, part: it.part, id: id})
				default:
					dead++
					s.feedback(it.part, st, owner)
				}
			}
			s.deliver(now)
			cn.last, cn.lastEnd = now, now
			cn.state = idle
			// Drop what the transactions took, now and then.
			if cn.take > 1024 && cn.take == cn.start {
				cn.fetched = append(cn.fetched[:0], cn.fetched[cn.take:]...)
				cn.start, cn.take, cn.pollEnd, cn.txnFrom = 0, 0, 0, 0
			}
		}
		s.advance(ev.cons, now)
	}
	return s.predict(c, base, delivered, dead, firstOut, lastOut), nil
}

// feedback sends the report of an ended batch to every earlier step that
// reads them, on the batch's partition.
func (s *Simulator) feedback(part int32, st int, owner func(int, int32) int32) {
	for e := 0; e < st; e++ {
		if !s.steps[e].fb {
			continue
		}
		id := int32(len(s.items))
		s.items = append(s.items, item{part: part, step: int8(e), fb: true, model: -1})
		s.routes = append(s.routes, route{cons: owner(e, part), topic: 2, part: part, id: id})
	}
}

// route is a record a commit made readable: for the consumer that owns
// its partition of its topic (0 the step's input, 1 its retry topic, 2 its
// feedback).
type route struct {
	cons  int32
	topic int8
	part  int32
	id    int32
	at    float64 // when it became readable
}

// deliver makes what a commit routed readable on the broker.
func (s *Simulator) deliver(now float64) {
	for _, r := range s.routes {
		s.push(now, evVisible, r.cons, r.id)
	}
}

// next picks the model of the batch's next attempt at its step and
// counts the attempt; -1 when every model has been tried.
func (s *Simulator) next(it *item) int8 {
	st := &s.steps[it.step]
	if it.attempts == 0 {
		u := s.rng.Float64()
		k := 0
		for k < len(st.first)-1 && u >= st.first[k] {
			k++
		}
		m := st.cascade[k]
		it.model, it.attempts, it.tried = m, 1, 1<<uint(m)
		return m
	}
	for _, m := range st.cascade {
		if it.tried&(1<<uint(m)) == 0 {
			it.model = m
			it.attempts++
			it.tried |= 1 << uint(m)
			return m
		}
	}
	return -1
}

// touched counts the partitions the open transaction of cn writes to:
// per topic, the partitions of the batches it passes on, traces, retries,
// dead-letters and reports, and the state topic's.
func (s *Simulator) touched(cn *consumer) int {
	var out, trace, retry, dlq, fb uint64
	last := len(s.steps) - 1
	reports := 0
	for _, st := range s.steps[:cn.step] {
		if st.fb {
			reports++
		}
	}
	for _, id := range cn.fetched[cn.txnFrom:cn.pollEnd] {
		it := &s.items[id]
		if it.fb {
			continue
		}
		bit := uint64(1) << uint(it.part%64)
		trace |= bit
		switch {
		case it.pass:
			out |= bit
			if int(it.step) == last {
				fb |= bit
			}
		case s.untried(it):
			retry |= bit
		default:
			dlq |= bit
			fb |= bit
		}
	}
	return 1 + bits.OnesCount64(out) + bits.OnesCount64(trace) + bits.OnesCount64(retry) + bits.OnesCount64(dlq) + reports*bits.OnesCount64(fb)
}

// untried says whether the batch's step has a model it has not tried.
func (s *Simulator) untried(it *item) bool {
	return it.tried != 1<<uint(len(s.steps[it.step].models))-1
}

// advance moves consumer ci on at now: starts workers, polls, takes
// finished batches in order and starts the commit.
func (s *Simulator) advance(ci int32, now float64) {
	cn := &s.cons[ci]
	for {
		moved := false
		// Workers start fetched batches in order, at most max_poll ahead of
		// the transaction; a batch the open transaction waits for starts
		// whatever the window (the stage puts it first in line).
		for cn.busy < cn.workers && cn.start < len(cn.fetched) && (cn.start-cn.take < cn.maxPoll || (cn.state == taking && cn.start < cn.pollEnd)) {
			s.begin(ci, cn.fetched[cn.start], now)
			cn.start++
			moved = true
		}
		if cn.state == idle && cn.take < len(cn.fetched) {
			cn.txnFrom = cn.take
			cn.pollEnd = cn.take + min(cn.maxPoll, len(cn.fetched)-cn.take)
			cn.state = taking
			moved = true
			if cn.pollEnd == len(cn.fetched) && cn.fetching == drained {
				// The client fetches again once everything is polled.
				if len(cn.pending) > 0 {
					cn.fetching, cn.fetchAt = inFlight, now
					s.push(now+s.p.Broker.FetchMs.at(s.rng.Float64()), evFetch, ci, -1)
				} else {
					cn.fetching = waiting
				}
			}
		}
		if cn.state == taking {
			for cn.take < cn.pollEnd && s.items[cn.fetched[cn.take]].done {
				if cn.take == cn.txnFrom {
					cn.firstTake = now
				}
				if s.broker >= 0 && !s.items[cn.fetched[cn.take]].fb {
					s.produce(ci, cn.fetched[cn.take], now)
				}
				cn.take++
				moved = true
			}
			if cn.take == cn.pollEnd {
				n := cn.pollEnd - cn.txnFrom
				d := s.p.Broker.CommitMs.at(s.rng.Float64())
				if b := &s.p.Broker.CommitBackToBackMs; len(b.Q) > 0 && cn.firstTake-cn.lastEnd < BackToBackMs {
					// The first record went out while the broker was
					// still ending the previous transaction: its retry
					// runs from then, alongside the wait for the rest.
					d = max(d, b.at(s.rng.Float64())-(now-cn.firstTake))
				}
				touched := s.touched(cn)
				d += s.p.Broker.CommitPerRecordMs*float64(n-1) + s.p.Broker.CommitPerPartitionMs*float64(touched-1)
				cn.commitAt = now
				cn.txns++
				cn.txnItems += n
				cn.state = committing
				if s.broker >= 0 {
					// The commit ends once the broker has done its work
					// on the transaction, which waits for a core.
					c := s.p.Broker.CPU
					w := c.TxnMs + c.PartitionMs*float64(touched)
					cn.queued, cn.parts = false, [4]uint64{}
					cn.commitMs = d
					s.run(s.broker, job{cons: ci, item: commitJob, ms: w}, now)
				} else {
					s.push(now+d, evCommit, ci, -1)
				}
				moved = true
			}
		}
		if !moved {
			return
		}
	}
}

// begin starts the next attempt of item id on a worker of consumer ci.
func (s *Simulator) begin(ci int32, id int32, now float64) {
	cn := &s.cons[ci]
	it := &s.items[id]
	it.startT = now
	cn.busy++
	if it.fb {
		s.push(now, evDone, ci, id)
		return
	}
	s.next(it)
	if s.p.StageCPUMs > 0 {
		s.run(cn.host, job{cons: ci, item: id, ms: s.p.StageCPUMs}, now)
		return
	}
	s.invoke(ci, id, now)
}

// run starts j on a core of host hi, or queues it for one.
func (s *Simulator) run(hi int, j job, now float64) {
	h := &s.hosts[hi]
	if h.busy >= h.cores {
		if j.item < 0 { // the broker's
			// The broker is its own process: the machine's scheduler
			// gives it a core within a time slice, not after the stages'
			// queue of work.
			h.queue = slices.Insert(h.queue, h.brokerQueued, j)
			h.brokerQueued++
			return
		}
		h.queue = append(h.queue, j)
		return
	}
	h.busy++
	h.used += j.ms
	switch j.item {
	case commitJob:
		h.brokerUsed += j.ms
		s.push(now+j.ms, evBroker, j.cons, j.item)
		s.push(now+max(s.cons[j.cons].commitMs, j.ms), evCommit, j.cons, -1)
	case requestJob, sendJob:
		h.brokerUsed += j.ms
		s.push(now+j.ms, evBroker, j.cons, j.item)
	default:
		s.push(now+j.ms, evCPU, j.cons, j.item)
	}
}

// produce sends what the transaction of cn took at now: the batch's
// output and its trace, in the request that leaves now if none is out, or
// in the next one, which leaves when the one out returns.
func (s *Simulator) produce(ci int32, id int32, now float64) {
	cn := &s.cons[ci]
	c := s.p.Broker.CPU
	rtt := s.p.Broker.ProduceMs.P50
	for cn.queued && now >= cn.reqBack {
		// The request waiting left when the last one returned.
		cn.reqBack += rtt
		cn.queued = false
	}
	it := &s.items[id]
	dest := 3 // dead-letter
	switch {
	case it.pass:
		dest = 1
	case s.untried(it):
		dest = 2
	}
	bit := uint64(1) << uint(it.part%64)
	w := 0.0
	kind := int32(requestJob)
	switch {
	case now >= cn.reqBack:
		// It returns after the round trip, or once a busy broker has
		// got to it (cpuDone): records produced meanwhile wait for the
		// next request, so a loaded broker gets fewer, larger ones.
		cn.reqBack = now + rtt
		kind = sendJob
		w += c.RequestMs + 2*c.AppendMs // the batch's output and its trace
		cn.added = false
	case !cn.queued:
		cn.queued = true
		w += c.RequestMs
		cn.added = false
		cn.reqParts = [4]uint64{}
		fallthrough
	default:
		// The records a partition gets in one request are appended to
		// its log at once.
		for _, t := range [2]int{0, dest} {
			if cn.reqParts[t]&bit == 0 {
				cn.reqParts[t] |= bit
				w += c.AppendMs
			}
		}
	}
	// A partition new to the transaction is added to it before the
	// request that writes to it goes, once per request.
	if (cn.parts[0]|cn.parts[dest])&bit != bit || cn.parts[0]&bit == 0 {
		cn.parts[0] |= bit
		cn.parts[dest] |= bit
		if !cn.added {
			cn.added = true
			w += c.AddMs
		}
	}
	if w == 0 && kind == requestJob {
		return // joins the queued request at no further cost
	}
	s.run(s.broker, job{cons: ci, item: kind, ms: w}, now)
}

// invoke calls the attempt's model, or queues it for a call slot.
func (s *Simulator) invoke(ci int32, id int32, now float64) {
	cn := &s.cons[ci]
	it := &s.items[id]
	m := it.model
	mod := &s.steps[it.step].models[m]
	if mod.cap > 0 && cn.inflight[m] >= mod.cap {
		cn.queues[m] = append(cn.queues[m], id)
		return
	}
	cn.inflight[m]++
	s.call(ci, id, now)
}

// cpuDone ends an attempt's stage work on its consumer's host, starts the
// next one waiting for a core there, and goes on to the model.
func (s *Simulator) cpuDone(ci int32, id int32, now float64) {
	hi := s.cons[ci].host
	if id < 0 {
		hi = s.broker
	}
	h := &s.hosts[hi]
	h.busy--
	if len(h.queue) > 0 {
		next := h.queue[0]
		h.queue = h.queue[1:]
		if next.item < 0 {
			h.brokerQueued--
		}
		s.run(hi, next, now)
	}
	if id >= 0 {
		s.invoke(ci, id, now)
	}
	if id == sendJob {
		cn := &s.cons[ci]
		cn.reqBack = max(cn.reqBack, now)
	}
}

// call sends item id's attempt to its model's server, or queues it there.
func (s *Simulator) call(ci int32, id int32, now float64) {
	it := &s.items[id]
	mod := &s.steps[it.step].models[it.model]
	if mod.capacity > 0 && mod.inflight >= mod.capacity {
		mod.queue = append(mod.queue, id)
		return
	}
	mod.inflight++
	d := max(0, mod.lat.at(s.rng.Float64())+mod.shift)
	it.pass = s.rng.Float64() < mod.pass
	s.push(now+d, evDone, ci, id)
}

// finish ends item id's call on consumer ci and hands the freed slots on.
func (s *Simulator) finish(ci int32, id int32, now float64) {
	cn := &s.cons[ci]
	it := &s.items[id]
	it.done = true
	cn.busy--
	cn.hold += now - it.startT
	if it.fb {
		return
	}
	m := it.model
	mod := &s.steps[it.step].models[m]
	mod.inflight--
	if len(mod.queue) > 0 {
		next := mod.queue[0]
		mod.queue = mod.queue[1:]
		s.call(s.items[next].cons, next, now)
	}
	cn.inflight[m]--
	if q := cn.queues[m]; len(q) > 0 {
		next := q[0]
		cn.queues[m] = q[1:]
		cn.inflight[m]++
		s.call(ci, next, now)
	}
}

func (s *Simulator) check(c Config) error {
	names := make([]string, len(s.p.Steps))
	for i, sp := range s.p.Steps {
		names[i] = sp.Name
	}
	return c.Check(names)
}

func (s *Simulator) predict(c Config, base []int, delivered, dead int, firstOut, lastOut float64) Prediction {
	p := Prediction{Delivered: delivered, DeadLettered: dead}
	if delivered > 1 && lastOut > firstOut {
		p.BatchesPerS = float64(delivered-1) / (lastOut - firstOut) * 1000
	}
	if len(s.lat) > 0 {
		slices.Sort(s.lat)
		p.P50Ms, p.P99Ms = quantile(s.lat, 0.5), quantile(s.lat, 0.99)
	}
	if a := s.byArrival; len(a) >= 20 {
		slices.SortFunc(a, func(x, y arrived) int { return cmp.Compare(x.at, y.at) })
		mean := func(xs []arrived) float64 {
			var t float64
			for _, x := range xs {
				t += x.lat
			}
			return t / float64(len(xs))
		}
		first, last := mean(a[:len(a)/10]), mean(a[len(a)-len(a)/10:])
		p.Sustained = last <= max(1.5*first, first+100)
	}
	worst := -1.0
	for i := range c.Steps {
		sp := StepPrediction{Name: s.p.Steps[i].Name, Consumers: base[i+1] - base[i]}
		var hold, commit, span, workers float64
		txns, items := 0, 0
		for _, cn := range s.cons[base[i]:base[i+1]] {
			if cn.first < 0 {
				continue
			}
			d := cn.last - cn.first
			hold += cn.hold
			commit += cn.commit
			span = max(span, d)
			workers += float64(cn.workers) * d
			txns += cn.txns
			items += cn.txnItems
		}
		if workers > 0 {
			sp.Utilization = hold / workers
			sp.CommitShare = commit / (span * float64(sp.Consumers))
		}
		if s.w.SharedCores <= 0 && span > 0 {
			var used, cores float64
			for k := base[i]; k < base[i+1]; k++ {
				h := s.hosts[s.cons[k].host]
				used += h.used
				cores += float64(h.cores)
			}
			sp.CPUShare = used / (cores * span)
		}
		if txns > 0 {
			sp.BatchesPerTxn = float64(items) / float64(txns)
		}
		sp.AttemptsPerBatch = s.attempts(i)
		sp.Limit = "none"
		pressure := max(sp.Utilization, sp.CommitShare, sp.CPUShare)
		switch {
		case sp.CPUShare >= 0.8 && sp.CPUShare >= sp.CommitShare:
			sp.Limit = "cpu"
		case sp.Utilization >= sp.CommitShare && sp.Utilization > 0.5:
			sp.Limit = "workers"
		case sp.CommitShare > 0.5:
			sp.Limit = "transactions"
		}
		if pressure > worst {
			worst, p.Bottleneck = pressure, sp.Name
		}
		p.Steps = append(p.Steps, sp)
	}
	if worst < 0.5 {
		p.Bottleneck = "input"
	}
	if s.w.SharedCores > 0 && lastOut > 0 {
		h := s.hosts[0]
		p.CPUShare = (h.used - h.brokerUsed) / (float64(h.cores) * lastOut)
	}
	if s.broker >= 0 && lastOut > 0 {
		h := s.hosts[s.broker]
		p.BrokerCPUShare = h.brokerUsed / (float64(h.cores) * lastOut)
		if s.w.SharedCores > 0 && h.used/(float64(h.cores)*lastOut) >= 0.9 {
			p.Bottleneck = "cpu"
		} else if p.BrokerCPUShare >= 0.9 {
			p.Bottleneck = "broker"
		}
	}
	return p
}

// attempts is the mean attempts per batch at step i, from the profile's
// pass probabilities along the cascade (the first choice weighted).
func (s *Simulator) attempts(i int) float64 {
	st := &s.steps[i]
	var total float64
	prev := 0.0
	for k, cum := range st.first {
		w := cum - prev
		prev = cum
		if w <= 0 {
			continue
		}
		n, reach := 0.0, 1.0
		order := append([]int8{st.cascade[k]}, st.cascade[:k]...)
		order = append(order, st.cascade[k+1:]...)
		for _, m := range order {
			n += reach
			reach *= 1 - st.models[m].pass
		}
		total += w * n
	}
	return total
}

func (s *Simulator) push(t float64, kind uint8, cons int32, id int32) {
	s.seq++
	s.heap = append(s.heap, event{t: t, seq: s.seq, kind: kind, cons: cons, item: id})
	h := s.heap
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (s *Simulator) pop() event {
	h := s.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	s.heap = h
	return top
}

func less(a, b event) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.seq < b.seq
}
