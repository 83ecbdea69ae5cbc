package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// mapRuns serves the engine's map-run hooks (sfn-local.mjs): a Map state
// with an ItemReader or a ResultWriter reads its items and writes its
// children's results through here, with the AWS SDK, as Step Functions
// does for a Distributed Map.
type mapRuns struct {
	s3     *s3.Client
	region string

	mu sync.Mutex
	// redrive is the failed map run a redrive continues: the next map run
	// of its state runs only the children that did not succeed, and its
	// results include those that did.
	redrive *mapRunState
	carried map[string][]childRun // per Map state: children carried over
	// inputs are the execution inputs of the continued map run's children.
	inputs map[string]map[int]json.RawMessage
}

// childRun is one child execution's outcome, as the engine reports it.
type childRun struct {
	Index     int             `json:"index"`
	Input     json.RawMessage `json:"input"`
	Output    json.RawMessage `json:"output,omitempty"`
	Status    string          `json:"status"`
	Error     string          `json:"error,omitempty"`
	Cause     string          `json:"cause,omitempty"`
	StartDate string          `json:"startDate,omitempty"`
	StopDate  string          `json:"stopDate,omitempty"`
}

// restart is where a redriven child starts again: the state it failed in
// (or was running when the map failed), with that state's recorded input.
type restart struct {
	StartAt string          `json:"startAt"`
	Input   json.RawMessage `json:"input"`
}

func (m *mapRuns) serve(mux *http.ServeMux) {
	mux.HandleFunc("POST /map-run", m.start)
	mux.HandleFunc("POST /result-writer", m.write)
}

func stateError(w http.ResponseWriter, name, cause string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": name, "cause": cause})
}

// start begins a map run: it reads the items (ItemReader), and when a
// redrive continues this state's failed map run, keeps only the items whose
// child failed, was aborted or never started ("Redriving Map Runs", AWS Step
// Functions Developer Guide: a redriven parent redrives the Map Run's
// unsuccessful child executions; successful ones are not run again).
func (m *mapRuns) start(w http.ResponseWriter, r *http.Request) {
	var req struct {
		State      string `json:"state"`
		ItemReader *struct {
			Bucket string `json:"bucket"`
			Key    string `json:"key"`
		} `json:"itemReader"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		stateError(w, "States.Runtime", "map run: "+err.Error())
		return
	}
	var resp struct {
		Items []json.RawMessage `json:"items"` // [] when the reader found none: null leaves the input
		Index []int             `json:"index,omitempty"`
		Redo  map[int]restart   `json:"redo,omitempty"`
	}
	if rd := req.ItemReader; rd != nil {
		out, err := m.s3.GetObject(r.Context(), &s3.GetObjectInput{Bucket: aws.String(rd.Bucket), Key: aws.String(rd.Key)})
		if err != nil {
			stateError(w, "States.ItemReaderFailed", fmt.Sprintf("ItemReader could not read s3://%s/%s: %v", rd.Bucket, rd.Key, err))
			return
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err == nil {
			err = json.Unmarshal(b, &resp.Items)
		}
		if err != nil {
			stateError(w, "States.ItemReaderFailed", fmt.Sprintf("ItemReader: s3://%s/%s is not a JSON array: %v", rd.Bucket, rd.Key, err))
			return
		}
		if resp.Items == nil {
			resp.Items = []json.RawMessage{}
		}
	}
	m.mu.Lock()
	cont := m.redrive
	if cont != nil && cont.state == req.State {
		m.redrive = nil
	} else {
		cont = nil
	}
	m.mu.Unlock()
	if cont != nil && resp.Items != nil {
		all := resp.Items
		resp.Items, resp.Index, resp.Redo = []json.RawMessage{}, []int{}, map[int]restart{}
		var carried []childRun
		for i, it := range all {
			c := cont.children[i]
			if c != nil && c.status == "SUCCEEDED" {
				carried = append(carried, childRun{Index: i, Input: c.input, Output: c.output, Status: "SUCCEEDED", StartDate: c.start, StopDate: c.stop})
				continue
			}
			resp.Items, resp.Index = append(resp.Items, it), append(resp.Index, i)
			if c != nil && c.lastState != "" {
				resp.Redo[i] = restart{StartAt: c.lastState, Input: c.lastInput}
			}
		}
		m.mu.Lock()
		if m.carried == nil {
			m.carried = map[string][]childRun{}
		}
		m.carried[req.State] = carried
		m.mu.Unlock()
		m.originals(req.State, cont)
	}
	json.NewEncoder(w).Encode(resp)
}

// originals remembers the original input of each redriven child: a child
// restarted mid-way reports its restart state's input, while its result
// file entry holds its execution's input.
func (m *mapRuns) originals(state string, cont *mapRunState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inputs == nil {
		m.inputs = map[string]map[int]json.RawMessage{}
	}
	in := map[int]json.RawMessage{}
	for i, c := range cont.children {
		if c.input != nil {
			in[i] = c.input
		}
	}
	m.inputs[state] = in
}

// resultEntry is one child execution in a ResultWriter file. The fields and
// their meaning follow "ResultWriter (Map)", AWS Step Functions Developer
// Guide (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html):
// results are exported to <Prefix>/<map run id>/, one set of files per
// status (SUCCEEDED_n.json, FAILED_n.json, PENDING_n.json), each a JSON
// array of child executions with their ARN, input and output (as JSON
// strings), status, error and cause; manifest.json lists the files by
// status, and the Map state's result is
// {"MapRunArn": ..., "ResultWriterDetails": {"Bucket": ..., "Key": <manifest>}}.
type resultEntry struct {
	ExecutionArn        string    `json:"ExecutionArn"`
	Name                string    `json:"Name"`
	Input               string    `json:"Input"`
	InputDetails        included  `json:"InputDetails"`
	Output              string    `json:"Output,omitempty"`
	OutputDetails       *included `json:"OutputDetails,omitempty"`
	Error               string    `json:"Error,omitempty"`
	Cause               string    `json:"Cause,omitempty"`
	RedriveCount        int       `json:"RedriveCount"`
	RedriveStatus       string    `json:"RedriveStatus"`
	RedriveStatusReason string    `json:"RedriveStatusReason,omitempty"`
	StartDate           string    `json:"StartDate,omitempty"`
	StopDate            string    `json:"StopDate,omitempty"`
	StateMachineArn     string    `json:"StateMachineArn"`
	Status              string    `json:"Status"`
}

type included struct {
	Included bool `json:"Included"`
}

type resultFile struct {
	Key  string `json:"Key"`
	Size int    `json:"Size"`
}

// manifest is ResultWriter's manifest.json.
type manifest struct {
	DestinationBucket string                  `json:"DestinationBucket"`
	MapRunArn         string                  `json:"MapRunArn"`
	ResultFiles       map[string][]resultFile `json:"ResultFiles"`
}

// resultFileEntries bounds the entries of one result file (Step Functions
// splits large result sets into several files per status).
const resultFileEntries = 1000

// write is ResultWriter: it writes the map run's child results (those of
// this attempt and, on a redrive, those carried over) to S3 and answers
// the Map state's result, the manifest reference.
func (m *mapRuns) write(w http.ResponseWriter, r *http.Request) {
	var req struct {
		State     string     `json:"state"`
		Execution string     `json:"execution"`
		Bucket    string     `json:"bucket"`
		Prefix    string     `json:"prefix"`
		Children  []childRun `json:"children"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		stateError(w, "States.ResultWriterFailed", "result writer: "+err.Error())
		return
	}
	m.mu.Lock()
	children := append(m.carried[req.State], req.Children...)
	originals := m.inputs[req.State]
	delete(m.carried, req.State)
	delete(m.inputs, req.State)
	m.mu.Unlock()
	sort.Slice(children, func(i, j int) bool { return children[i].Index < children[j].Index })

	id := newID()
	machine, execName := "KeyRotor", "local"
	if parts := strings.Split(req.Execution, ":"); len(parts) >= 8 {
		machine, execName = parts[6], parts[7]
	}
	arn := fmt.Sprintf("arn:aws:states:%s:123456789012:mapRun:%s/%s:%s", m.region, machine, req.State, id)
	childMachine := fmt.Sprintf("arn:aws:states:%s:123456789012:stateMachine:%s/%s", m.region, machine, req.State)
	byStatus := map[string][]resultEntry{}
	for _, c := range children {
		in := c.Input
		if o, ok := originals[c.Index]; ok {
			in = o
		}
		e := resultEntry{
			Name:         fmt.Sprintf("%s-%s-%d", SafeName(execName), id[:8], c.Index),
			Input:        string(in),
			InputDetails: included{true},
			Status:       c.Status,
			StartDate:    c.StartDate, StopDate: c.StopDate,
			StateMachineArn: childMachine,
			Error:           c.Error, Cause: c.Cause,
		}
		e.ExecutionArn = fmt.Sprintf("arn:aws:states:%s:123456789012:execution:%s/%s:%s", m.region, machine, req.State, e.Name)
		if c.Status == "SUCCEEDED" {
			e.Output, e.OutputDetails = string(c.Output), &included{true}
			e.RedriveStatus, e.RedriveStatusReason = "NOT_REDRIVABLE", "Execution is SUCCEEDED and cannot be redriven"
		} else {
			e.RedriveStatus = "REDRIVABLE"
		}
		byStatus[c.Status] = append(byStatus[c.Status], e)
	}
	prefix := strings.TrimSuffix(req.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	man := manifest{DestinationBucket: req.Bucket, MapRunArn: arn, ResultFiles: map[string][]resultFile{"FAILED": {}, "PENDING": {}, "SUCCEEDED": {}}}
	for _, status := range []string{"SUCCEEDED", "FAILED", "PENDING"} {
		entries := byStatus[status]
		for n := 0; n*resultFileEntries < len(entries); n++ {
			part := entries[n*resultFileEntries : min(len(entries), (n+1)*resultFileEntries)]
			key := fmt.Sprintf("%s%s/%s_%d.json", prefix, id, status, n)
			b, _ := json.Marshal(part)
			if err := m.put(r, req.Bucket, key, b); err != nil {
				stateError(w, "States.ResultWriterFailed", err.Error())
				return
			}
			man.ResultFiles[status] = append(man.ResultFiles[status], resultFile{Key: key, Size: len(b)})
		}
	}
	key := prefix + id + "/manifest.json"
	b, _ := json.Marshal(man)
	if err := m.put(r, req.Bucket, key, b); err != nil {
		stateError(w, "States.ResultWriterFailed", err.Error())
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"MapRunArn": arn, "ResultWriterDetails": map[string]string{"Bucket": req.Bucket, "Key": key}})
}

func (m *mapRuns) put(r *http.Request, bucket, key string, b []byte) error {
	_, err := m.s3.PutObject(r.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b), ContentType: aws.String("application/json")})
	if err != nil {
		return fmt.Errorf("ResultWriter could not write s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}
