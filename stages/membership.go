package stages

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// DefaultSessionTimeout is how long a step's group waits for a consumer
// that stopped heartbeating (WithSessionTimeout).
const DefaultSessionTimeout = 10 * time.Second

// A stage is a static member of its step's group: it joins under its
// instance name, so a stage that crashed and restarts takes its partitions
// back at once instead of the group waiting out the dead member's session.
// A static member does not leave the group when its client closes, so a
// stage that stops on purpose (shutdown, scale-down) leaves explicitly, and
// the group hands its partitions to the others at once.

// leaveGroup removes this stage's instance from its group, within a short
// deadline; a failure only means the group waits out the session.
func (s *Stage) leaveGroup() {
	cl, err := kgo.NewClient(s.kafka.ClientOpts()...)
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), min(3*time.Second, s.closeDeadline))
	defer cancel()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = s.step.Spec.Group
	m := kmsg.NewLeaveGroupRequestMember()
	m.InstanceID = &s.instance
	reason := "flexiflow stage stopped"
	m.Reason = &reason
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
		for _, mr := range resp.Members {
			if e := kerr.ErrorForCode(mr.ErrorCode); e != nil && err == nil && e != kerr.UnknownMemberID {
				err = e
			}
		}
	}
	if err != nil {
		s.log.Info("could not leave the group; it hands this consumer's partitions on after its session timeout",
			zap.String("group", req.Group), zap.Duration("session_timeout", s.sessionTO), zap.Error(err))
	}
}
