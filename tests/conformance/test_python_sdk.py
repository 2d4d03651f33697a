"""Conformance: Genesys' official Python SDK (PureCloudPlatformClientV2) runs the whole
recording-export flow against custos-sim and deserialises every response.

The SDK is the closest thing to the real service we can run here: it is generated from
Genesys' own OpenAPI spec, so a misspelt field, a wrong type or an unknown enum value in the
simulator shows up as a missing attribute or as the SDK's "outdated_sdk_version" marker.
"""
import hashlib
import json
import time
import urllib.request

import PureCloudPlatformClientV2 as gc
import pytest
from PureCloudPlatformClientV2.rest import ApiException

WEEK = "2023-10-01T00:00:00.000Z/2023-10-08T00:00:00.000Z"


def walk(value, path="$"):
    """Yields (path, leaf) for every leaf of an SDK model's to_dict()."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, value


def assert_known_enums(model):
    """The SDK maps enum values it does not know to 'outdated_sdk_version'."""
    bad = [p for p, v in walk(model.to_dict()) if v == "outdated_sdk_version"]
    assert not bad, f"values the official SDK does not know: {bad}"


@pytest.fixture(scope="module")
def client(sim):
    api = gc.api_client.ApiClient(host=sim.base)
    api.get_client_credentials_token("sdk-client", "sdk-secret")
    assert api.access_token
    return api


def test_bad_credentials_are_refused(sim):
    api = gc.api_client.ApiClient(host=sim.base)
    with pytest.raises(Exception):
        api.get_client_credentials_token("sdk-client", "wrong")


def test_full_export_flow_with_the_official_sdk(sim, client):
    truth = sim.truth()
    analytics = gc.ConversationsApi(client)
    recordings = gc.RecordingApi(client)

    # 1. Discover conversations: every page until one comes back without conversations.
    conversation_ids = []
    page = 1
    while True:
        q = gc.ConversationQuery()
        q.interval = WEEK
        q.order = "asc"
        q.order_by = "conversationStart"
        q.paging = gc.PagingSpec()
        q.paging.page_size = 10
        q.paging.page_number = page
        resp = analytics.post_analytics_conversations_details_query(q)
        assert isinstance(resp, gc.AnalyticsConversationQueryResponse)
        assert resp.total_hits == 30
        assert_known_enums(resp)
        if not resp.conversations:
            break
        for c in resp.conversations:
            assert c.conversation_id and c.conversation_start and c.participants
            for p in c.participants:
                assert p.purpose in ("customer", "acd", "agent")
                for s in p.sessions:
                    assert s.media_type == "voice" and s.segments
        conversation_ids += [c.conversation_id for c in resp.conversations]
        page += 1
    assert len(conversation_ids) == len(set(conversation_ids)) == 30

    # 2. List recordings per conversation.
    pairs = []
    for cid in conversation_ids:
        for m in recordings.get_conversation_recordingmetadata(cid):
            assert isinstance(m, gc.RecordingMetadata)
            assert_known_enums(m)
            pairs.append((cid, m.id, m.file_state))
    by_id = {r["id"]: r for r in truth["recordings"]}
    assert {p[1] for p in pairs} == set(by_id)
    for _, rid, state in pairs:
        assert state == by_id[rid]["fileState"]

    # 3. Batch requests of at most 100 items, polled until complete.
    results = []
    for i in range(0, len(pairs), 100):
        sub = gc.BatchDownloadJobSubmission()
        sub.batch_download_request_list = []
        for cid, rid, _ in pairs[i:i + 100]:
            item = gc.BatchDownloadRequest()
            item.conversation_id = cid
            item.recording_id = rid
            sub.batch_download_request_list.append(item)
        job = recordings.post_recording_batchrequests(sub)
        assert isinstance(job, gc.BatchDownloadJobSubmissionResult) and job.id
        for _ in range(200):
            status = recordings.get_recording_batchrequest(job.id)
            assert isinstance(status, gc.BatchDownloadJobStatusResult)
            assert_known_enums(status)
            if status.status == "Completed" and status.result_count == status.expected_result_count:
                break
            time.sleep(0.05)
        else:
            pytest.fail("batch job never completed")
        results += status.results

    # 4. Download every resultUrl with no Authorization header; bytes must be the truth.
    downloaded = 0
    for res in results:
        expected = by_id[res.recording_id]
        if expected["fileState"] in ("ARCHIVED", "DELETED"):
            assert res.error_msg and not res.result_url
            continue
        assert res.content_type == expected["contentType"]
        with urllib.request.urlopen(res.result_url) as r:
            data = r.read()
        assert hashlib.sha256(data).hexdigest() == expected["sha256"], res.recording_id
        downloaded += 1
    assert downloaded > 0
    assert sim.stats()["bearerOnMedia"] == 0


def test_single_recording_and_errors_through_the_sdk(sim, client):
    truth = sim.truth()
    rec = next(r for r in truth["recordings"] if r["fileState"] == "AVAILABLE")
    api = gc.RecordingApi(client)
    r = api.get_conversation_recording(rec["conversationId"], rec["id"], format_id="OGG_OPUS", download=True)
    assert isinstance(r, gc.Recording)
    assert_known_enums(r)
    assert r.output_duration_ms == rec["statedDurationMs"]
    assert r.output_size_in_bytes == rec["formats"]["OGG_OPUS"]["sizeBytes"]
    with urllib.request.urlopen(r.media_uris["S"].media_uri) as resp:
        assert hashlib.sha256(resp.read()).hexdigest() == rec["formats"]["OGG_OPUS"]["sha256"]

    with pytest.raises(ApiException) as e:
        api.get_conversation_recordingmetadata("no-such-conversation")
    assert e.value.status == 404
    assert "conversation.not.found" in e.value.body

    jobs = gc.ConversationsApi(client)
    q = gc.AsyncConversationQuery()
    q.interval = WEEK
    job = jobs.post_analytics_conversations_details_jobs(q)
    for _ in range(100):
        st = jobs.get_analytics_conversations_details_job(job.job_id)
        if st.state == "FULFILLED":
            break
        time.sleep(0.05)
    assert st.state == "FULFILLED"
    ids, cursor = [], None
    while True:
        kw = {"page_size": 7}
        if cursor:
            kw["cursor"] = cursor
        page = jobs.get_analytics_conversations_details_job_results(job.job_id, **kw)
        assert_known_enums(page)
        ids += [c.conversation_id for c in page.conversations or []]
        cursor = page.cursor
        if not cursor:
            break
    assert len(ids) == len(set(ids)) == 30


def test_directory_names_every_id_analytics_records(sim, client):
    """Users, queues, skills, wrap-up codes and divisions, fetched by id lists as custos does,
    through the SDK's own methods: every id the analytics record holds is named, as the ground
    truth says."""
    analytics = gc.ConversationsApi(client)
    q = gc.ConversationQuery()
    q.interval = WEEK
    q.paging = gc.PagingSpec()
    q.paging.page_size = 100
    q.paging.page_number = 1
    resp = analytics.post_analytics_conversations_details_query(q)
    users, queues, skills, wrapups, divisions = set(), set(), set(), set(), set()
    for c in resp.conversations:
        divisions.update(c.division_ids or [])
        for p in c.participants:
            if p.user_id:
                users.add(p.user_id)
            for s in p.sessions:
                for seg in s.segments:
                    if seg.queue_id:
                        queues.add(seg.queue_id)
                    skills.update(seg.requested_routing_skill_ids or [])
                    if seg.wrap_up_code:
                        wrapups.add(seg.wrap_up_code)
    assert users and queues and skills and wrapups and divisions

    truth = sim.truth()
    named = {}
    for r in truth["recordings"]:
        for k in ("agent", "queue", "skill", "wrapup"):
            i, n = r["call"][k]
            named[i] = n
        named[r["call"]["divisionId"]] = r["call"]["divisionName"]

    routing = gc.RoutingApi(client)
    for ids, fetch, listing in [
        (users, gc.UsersApi(client).get_users, gc.UserEntityListing),
        (queues, routing.get_routing_queues, gc.QueueEntityListing),
        (skills, routing.get_routing_skills, gc.SkillEntityListing),
        (wrapups, routing.get_routing_wrapupcodes, gc.WrapupCodeEntityListing),
        (divisions, gc.AuthorizationApi(client).get_authorization_divisions,
         gc.AuthzDivisionEntityListing),
    ]:
        got = fetch(id=sorted(ids), page_size=100)
        assert isinstance(got, listing)
        assert_known_enums(got)
        assert got.total == len(ids) and got.page_count == 1
        assert {e.id: e.name for e in got.entities} == {i: named[i] for i in ids}

    # More than 100 ids is refused, as Genesys does.
    with pytest.raises(ApiException) as e:
        routing.get_routing_queues(id=[f"q{i}" for i in range(101)])
    assert e.value.status == 400


def live_truth(sim):
    with urllib.request.urlopen(sim.base + "/sim/truth") as r:
        return json.load(r)


def test_deletion_protection_and_restore_through_the_sdk(sim, client):
    """Deletion protection (apply, list, revoke) and the restore of an archived recording,
    through the SDK's own methods and models, as custos --protect / --restore-archived send them."""
    truth = live_truth(sim)
    conversations = sorted({r["conversationId"] for r in truth["recordings"]})[:5]
    api = gc.RecordingApi(client)
    body = gc.ConversationDeletionProtectionQuery()
    body.conversation_ids = conversations + ["no-such-conversation"]
    res = api.put_recordings_deletionprotection(protect=True, body=body)
    assert isinstance(res, gc.ManageDeleteProtectionResult)
    assert [f.conversation.id for f in res.failed_updates] == ["no-such-conversation"]
    assert res.failed_updates[0].error_code == "conversation.not.found"
    listed = api.post_recordings_deletionprotection(body)
    assert all(isinstance(e, gc.AddressableEntityRef) for e in listed)
    assert sorted(e.id for e in listed) == conversations
    protected = {r["conversationId"] for r in live_truth(sim)["recordings"] if r["protected"]}
    assert protected == set(conversations)
    # More than 100 ids is refused, as the SDK's model says.
    big = gc.ConversationDeletionProtectionQuery()
    big.conversation_ids = [f"c{i}" for i in range(101)]
    with pytest.raises(ApiException) as e:
        api.put_recordings_deletionprotection(protect=True, body=big)
    assert e.value.status == 400
    api.put_recordings_deletionprotection(protect=False, body=body)
    assert api.post_recordings_deletionprotection(body) == []

    rec = next(r for r in truth["recordings"] if r["fileState"] == "ARCHIVED")
    update = gc.Recording()
    update.archive_date = "2031-01-01T00:00:00.000Z"
    r = api.put_conversation_recording(rec["conversationId"], rec["id"], update)
    assert isinstance(r, gc.Recording)
    assert_known_enums(r)
    assert r.file_state == "RESTORING"
    for _ in range(100):
        m = api.get_conversation_recordingmetadata_recording_id(rec["conversationId"], rec["id"])
        if m.file_state == "RESTORED":
            break
        time.sleep(0.05)
    assert m.file_state == "RESTORED"
    assert m.restore_expiration_time is not None and m.restore_expiration_time.year == 2031
    after = next(x for x in live_truth(sim)["recordings"] if x["id"] == rec["id"])
    assert after["restoreRequests"] == 1 and after["fileState"] == "RESTORED"


def test_orphan_recordings_through_the_sdk(sim, client):
    """The org's orphan recordings, paged as custos --orphans pages them."""
    truth = live_truth(sim)
    api = gc.RecordingApi(client)
    got, page = [], 1
    while True:
        listing = api.get_orphanrecordings(page_size=2, page_number=page, has_conversation=False)
        assert isinstance(listing, gc.OrphanRecordingListing)
        assert_known_enums(listing)
        got += [(o.id, o.created_time) for o in listing.entities]
        if page >= listing.page_count:
            break
        page += 1
    assert [i for i, _ in got] == [i for i, _ in truth["orphans"]]
    assert all(o.media_type == "CALL" and o.orphan_status == "NO_CONVERSATION"
               for o in api.get_orphanrecordings(page_size=100, has_conversation=False).entities)
    assert api.get_orphanrecordings(has_conversation=True).entities == []


def test_transcripts_and_annotations_through_the_sdk(sim, client):
    """A voice communication's Speech & Text Analytics transcript URL and a recording's
    annotations, through the SDK's own methods and models."""
    truth = live_truth(sim)
    rec = next(r for r in truth["recordings"] if r["transcript"] and r["fileState"] == "AVAILABLE")
    sta = gc.SpeechTextAnalyticsApi(client)
    u = sta.get_speechandtextanalytics_conversation_communication_transcripturl(
        rec["conversationId"], rec["communicationId"])
    assert isinstance(u, gc.TranscriptUrl) and u.url
    with urllib.request.urlopen(u.url) as resp:
        doc = json.load(resp)
    phrases = doc["transcripts"][0]["phrases"]
    assert [(p["startTimeMs"], p["participantPurpose"], p["text"]) for p in phrases] == \
        [(p["startTimeMs"], p["participantPurpose"], p["text"]) for p in rec["transcript"]]
    none = next((r for r in truth["recordings"] if not r["transcript"]), None)
    if none:
        with pytest.raises(ApiException) as e:
            sta.get_speechandtextanalytics_conversation_communication_transcripturl(
                none["conversationId"], none["communicationId"])
        assert e.value.status == 404
    notes = gc.RecordingApi(client).get_conversation_recording_annotations(rec["conversationId"], rec["id"])
    assert isinstance(notes, list) and all(isinstance(a, gc.Annotation) for a in notes)


def test_screen_chat_email_and_messaging_recordings_through_the_sdk():
    """Every media type through the SDK's own recording GET (formatId, emailFormatId,
    chatFormatId, messageFormatId) and models: the thread each Recording carries deserialises
    into ChatMessage, RecordingEmailMessage and RecordingMessagingMessage, the media URL gives
    the truth's bytes, NONE gives no media, and analytics filters by the session's mediaType."""
    from conftest import Sim

    sim = Sim("--conversations", "8", "--seed", "11", "--screen", "0.5", "--digital", "9",
              "--transcode-ms", "0", "--archived", "0", "--deleted", "0",
              "--client-id", "sdk-client", "--client-secret", "sdk-secret")
    try:
        api = gc.api_client.ApiClient(host=sim.base)
        api.get_client_credentials_token("sdk-client", "sdk-secret")
        recs = gc.RecordingApi(api)
        truth = sim.truth()
        others = [r for r in truth["recordings"] if r["media"] != "audio"]
        assert {r["media"] for r in others} == {"screen", "chat", "email", "messaging"}
        field = {"chat": "transcript", "email": "email_transcript", "messaging": "messaging_transcript"}
        model = {"chat": gc.ChatMessage, "email": gc.RecordingEmailMessage,
                 "messaging": gc.RecordingMessagingMessage}
        for t in others:
            r = recs.get_conversation_recording(
                t["conversationId"], t["id"], format_id="WEBM", email_format_id="EML",
                chat_format_id="ZIP", message_format_id="ZIP", download=True)
            assert isinstance(r, gc.Recording)
            assert_known_enums(r)
            assert r.media == t["media"]
            meta = recs.get_conversation_recordingmetadata_recording_id(t["conversationId"], t["id"])
            assert_known_enums(meta)
            assert meta.media == t["media"]
            assert (meta.start_time is not None) == (t["media"] == "screen")
            with urllib.request.urlopen(r.media_uris["S"].media_uri) as resp:
                assert resp.headers["Content-Type"] == t["contentType"]
                assert hashlib.sha256(resp.read()).hexdigest() == t["sha256"]
            if t["media"] == "screen":
                assert r.media_subtype == "Screen"
                assert r.output_duration_ms == t["statedDurationMs"]
                continue
            thread = getattr(r, field[t["media"]])
            assert thread and all(isinstance(m, model[t["media"]]) for m in thread)
            if t["media"] == "email":
                assert all(isinstance(a, gc.EmailAttachment) and a.content_length > 0
                           for a in thread[0].attachments)
                assert isinstance(thread[0].pcFrom, gc.EmailAddress)
            param = {"chat": "chat_format_id", "email": "email_format_id",
                     "messaging": "message_format_id"}[t["media"]]
            bare = recs.get_conversation_recording(t["conversationId"], t["id"], download=True,
                                                   **{param: "NONE"})
            assert bare.media_uris is None
        analytics = gc.ConversationsApi(api)
        for media_type, media in [("chat", "chat"), ("email", "email"), ("message", "messaging")]:
            q = gc.ConversationQuery()
            q.interval = WEEK
            f = gc.SegmentDetailQueryFilter()
            f.type = "and"
            p = gc.SegmentDetailQueryPredicate()
            p.dimension = "mediaType"
            p.value = media_type
            f.predicates = [p]
            q.segment_filters = [f]
            resp = analytics.post_analytics_conversations_details_query(q)
            assert_known_enums(resp)
            got = {c.conversation_id for c in resp.conversations or []}
            assert got == {r["conversationId"] for r in others if r["media"] == media}
    finally:
        sim.stop()
