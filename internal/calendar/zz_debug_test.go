package calendar_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/keyrotor/keyrotor/internal/calendar"
)

func debugDump(w *calendar.World) {
	if os.Getenv("KR_DEBUG") == "" {
		return
	}
	recs, _ := w.Records.All(context.Background())
	for id, r := range recs {
		b, _ := json.Marshal(r.Adoption)
		fmt.Printf("REC %s %s rot=%d state=%s owner=%s lease=%s outcome=%q adoption=%s\n", r.User, id, r.Rotation, r.State, r.Owner, r.LeaseUntil, r.Outcome, b)
		if os.Getenv("KR_DEBUG") == "2" {
			for _, h := range r.History {
				fmt.Printf("    %s %s %s %s\n", h.At, h.State, h.Execution, h.Note)
			}
		}
	}
	for _, p := range w.Windows() {
		fmt.Printf("WINDOW %s next=%s\n", p.Name, p.NextCheck)
	}
}
