package metrics

// Figures are the state of a deployment at a glance: what find emits on
// every run and `keyrotor status` prints (shared/audit.FiguresOf computes
// them from the audit report's rows and the rotation records).
type Figures struct {
	// Active access keys by age band.
	KeysFresh int `json:"keysFresh"`
	KeysAging int `json:"keysAging"`
	KeysOld   int `json:"keysOld"`
	// Oldest is the oldest Active key keyrotor is to rotate (not exempt,
	// not held by a person); nil when there is none.
	Oldest *Key `json:"oldestKey,omitempty"`
	// Rotations by state.
	InFlight  int `json:"rotationsInFlight"`
	Adopting  int `json:"rotationsAdopting"`
	InGrace   int `json:"rotationsInGrace"`
	Held      int `json:"rotationsHeld"`
	Attention int `json:"rotationsNeedingAttention"`
}

// Key names a key in the figures.
type Key struct {
	Account string `json:"account,omitempty"`
	User    string `json:"user"`
	ID      string `json:"id"`
	AgeDays int    `json:"ageDays"`
}

// Values are the figures as metric values (OldestKeyAgeDays is 0 when no
// key is to be rotated).
func (f Figures) Values() map[string]float64 {
	oldest := 0
	if f.Oldest != nil {
		oldest = f.Oldest.AgeDays
	}
	return map[string]float64{
		KeysFresh: float64(f.KeysFresh), KeysAging: float64(f.KeysAging), KeysOld: float64(f.KeysOld),
		OldestKeyAgeDays:  float64(oldest),
		RotationsInFlight: float64(f.InFlight), RotationsAdopting: float64(f.Adopting), RotationsInGrace: float64(f.InGrace),
		RotationsHeld: float64(f.Held), RotationsAttention: float64(f.Attention),
	}
}

// Flag is 1 when b holds, else 0: an event metric's value at a decision.
func Flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
