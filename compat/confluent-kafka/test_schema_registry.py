"""gregor's built-in schema registry (--schema-registry-listen) with confluent-kafka's
SchemaRegistryClient and its Avro, JSON Schema and Protobuf serializers: register, evolve
compatibly, be refused incompatibly, consume old and new records, and keep ids and versions
across a restart. Then the REST API itself, endpoint by endpoint, with Confluent's error codes.

No Confluent registry can run here (its jars are not on Maven Central, Karapace is not on PyPI):
these tests follow Confluent's documented API; differences are in FINDINGS.md. Apache Kafka has
no registry, so under KAFKA_REFERENCE_LIBS they are skipped.
"""

import json
import os
import urllib.error
import urllib.request

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from clients import consumer, producer

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("KAFKA_REFERENCE_LIBS")), reason="Apache Kafka has no schema registry")


@pytest.fixture
def registry_broker(make_broker):
    return make_broker(schema_registry=True)


def client(broker):
    return SchemaRegistryClient({"url": broker.registry_url})


def produce(broker, topic, serializer, values):
    p = producer(broker)
    for v in values:
        p.produce(topic, value=serializer(v, SerializationContext(topic, MessageField.VALUE)))
    assert p.flush(30) == 0


def consume(broker, topic, deserializer, count):
    """The first `count` values of partition 0, deserialized."""
    from confluent_kafka import TopicPartition
    c = consumer(broker)
    c.assign([TopicPartition(topic, 0, 0)])
    values = []
    try:
        while len(values) < count:
            m = c.poll(10)
            assert m is not None, f"only {len(values)} of {count} records"
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                continue
            values.append(deserializer(m.value(), SerializationContext(topic, MessageField.VALUE)))
    finally:
        c.close()
    return values


def refused(call):
    """The SchemaRegistryError `call` raised (serializers wrap it in their own error)."""
    with pytest.raises(Exception) as info:
        call()
    e = info.value
    while e is not None and not isinstance(e, SchemaRegistryError):
        e = e.__cause__ or e.__context__
    assert e is not None, f"not a registry error: {info.value!r}"
    return e


def restart(broker):
    assert broker.clean_exit(broker.stop())
    broker.start()


# Avro

USER_V1 = {"type": "record", "name": "User", "namespace": "gregor.test",
           "fields": [{"name": "name", "type": "string"}]}
USER_V2 = {**USER_V1, "fields": USER_V1["fields"] + [{"name": "age", "type": "int", "default": -1}]}
# A new field without a default: v3 cannot read v2's records (BACKWARD refuses it).
USER_V3 = {**USER_V1, "fields": USER_V2["fields"] + [{"name": "email", "type": "string"}]}


def test_avro_register_evolve_refuse_consume_and_restart(registry_broker, topic):
    sr = client(registry_broker)
    ser = lambda schema: AvroSerializer(sr, json.dumps(schema))  # noqa: E731
    produce(registry_broker, topic, ser(USER_V1), [{"name": "ann"}])
    produce(registry_broker, topic, ser(USER_V2), [{"name": "bob", "age": 42}])
    e = refused(lambda: produce(registry_broker, topic, ser(USER_V3),
                                [{"name": "cy", "age": 1, "email": "c@x"}]))
    assert (e.http_status_code, e.error_code) == (409, 409), e
    subject = f"{topic}-value"
    assert sr.get_versions(subject) == [1, 2]
    latest = sr.get_latest_version(subject)
    ids = [sr.get_version(subject, v).schema_id for v in (1, 2)]
    assert latest.version == 2 and latest.schema_id == ids[1] and ids[0] != ids[1]

    # A consumer reads both with the writer's schema of each record...
    assert consume(registry_broker, topic, AvroDeserializer(sr), 2) == [
        {"name": "ann"}, {"name": "bob", "age": 42}]
    # ...or resolves both to the newest (v1's record gets the default).
    reader = AvroDeserializer(sr, json.dumps(USER_V2))
    assert consume(registry_broker, topic, reader, 2) == [
        {"name": "ann", "age": -1}, {"name": "bob", "age": 42}]

    restart(registry_broker)
    sr = client(registry_broker)
    assert sr.get_versions(subject) == [1, 2]
    assert [sr.get_version(subject, v).schema_id for v in (1, 2)] == ids
    assert consume(registry_broker, topic, AvroDeserializer(sr), 2)[1] == {"name": "bob", "age": 42}
    # Registering v2 again after the restart finds it: same id, no new version.
    assert sr.register_schema(subject, Schema(json.dumps(USER_V2), "AVRO")) == ids[1]
    # A new schema gets an id above every id given before the restart.
    other = sr.register_schema(f"{topic}-key", Schema('"string"', "AVRO"))
    assert other > max(ids)


# JSON Schema

def json_schema(properties, required, closed=True):
    return json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#", "title": "Order", "type": "object",
        "properties": properties, "required": required, "additionalProperties": not closed})


ORDER_V1 = json_schema({"id": {"type": "integer"}}, ["id"])
# Closed content model: adding an optional property reads every v1 document.
ORDER_V2 = json_schema({"id": {"type": "integer"}, "note": {"type": "string"}}, ["id"])
# Changing a property's type does not.
ORDER_V3 = json_schema({"id": {"type": "string"}, "note": {"type": "string"}}, ["id"])


def test_json_schema_register_evolve_refuse_consume_and_restart(registry_broker, topic):
    sr = client(registry_broker)
    to_dict = lambda obj, ctx: obj  # noqa: E731
    produce(registry_broker, topic, JSONSerializer(ORDER_V1, sr, to_dict), [{"id": 1}])
    produce(registry_broker, topic, JSONSerializer(ORDER_V2, sr, to_dict), [{"id": 2, "note": "n"}])
    e = refused(lambda: produce(registry_broker, topic, JSONSerializer(ORDER_V3, sr, to_dict),
                                [{"id": "3"}]))
    assert e.error_code == 409, e
    subject = f"{topic}-value"
    assert sr.get_versions(subject) == [1, 2]
    # Serializers validate against their schema before registering anything.
    e = refused(lambda: sr.register_schema(subject, Schema('{"type": "strang"}', "JSON")))
    assert (e.http_status_code, e.error_code) == (422, 42201), e
    deser = JSONDeserializer(None, schema_registry_client=sr)
    assert consume(registry_broker, topic, deser, 2) == [{"id": 1}, {"id": 2, "note": "n"}]

    ids = [sr.get_version(subject, v).schema_id for v in (1, 2)]
    restart(registry_broker)
    sr = client(registry_broker)
    assert [sr.get_version(subject, v).schema_id for v in (1, 2)] == ids
    assert sr.get_version(subject, 2).schema.schema_type == "JSON"
    deser = JSONDeserializer(None, schema_registry_client=sr)
    assert consume(registry_broker, topic, deser, 2)[0] == {"id": 1}


# Protobuf: message classes built from descriptors (no protoc here), one pool per version.

def message_class(fields, package="gregor.test"):
    """The class of message `Payment` in file payment.proto with `fields` [(name, number, type)]."""
    f = descriptor_pb2.FileDescriptorProto(name="payment.proto", package=package, syntax="proto3")
    m = f.message_type.add(name="Payment")
    for name, number, kind in fields:
        m.field.add(name=name, number=number, type=kind,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.Payment"))


T = descriptor_pb2.FieldDescriptorProto
PAYMENT_V1 = message_class([("id", 1, T.TYPE_STRING), ("amount", 2, T.TYPE_INT32)])
# A field added, and int32 widened to int64 (wire-compatible).
PAYMENT_V2 = message_class([("id", 1, T.TYPE_STRING), ("amount", 2, T.TYPE_INT64),
                            ("memo", 3, T.TYPE_STRING)])
# amount becomes a string: FIELD_SCALAR_KIND_CHANGED.
PAYMENT_V3 = message_class([("id", 1, T.TYPE_STRING), ("amount", 2, T.TYPE_STRING)])


def test_protobuf_register_evolve_refuse_consume_and_restart(registry_broker, topic):
    sr = client(registry_broker)
    ser = lambda cls: ProtobufSerializer(cls, sr)  # noqa: E731
    produce(registry_broker, topic, ser(PAYMENT_V1), [PAYMENT_V1(id="p1", amount=5)])
    produce(registry_broker, topic, ser(PAYMENT_V2), [PAYMENT_V2(id="p2", amount=6, memo="m")])
    e = refused(lambda: produce(registry_broker, topic, ser(PAYMENT_V3),
                                [PAYMENT_V3(id="p3", amount="7")]))
    assert e.error_code == 409, e
    subject = f"{topic}-value"
    assert sr.get_versions(subject) == [1, 2]
    assert sr.get_latest_version(subject).schema.schema_type == "PROTOBUF"
    got = consume(registry_broker, topic, ProtobufDeserializer(PAYMENT_V2), 2)
    assert [(p.id, p.amount, p.memo) for p in got] == [("p1", 5, ""), ("p2", 6, "m")]

    ids = [sr.get_version(subject, v).schema_id for v in (1, 2)]
    restart(registry_broker)
    sr = client(registry_broker)
    assert [sr.get_version(subject, v).schema_id for v in (1, 2)] == ids
    # The serializer of v2 finds its schema registered: same id, no new version.
    produce(registry_broker, topic, ser(PAYMENT_V2), [PAYMENT_V2(id="p4", amount=8)])
    assert sr.get_versions(subject) == [1, 2]
    got = consume(registry_broker, topic, ProtobufDeserializer(PAYMENT_V2), 3)
    assert got[2].id == "p4"


# The REST API, endpoint by endpoint.

class Rest:
    def __init__(self, url):
        self.url = url

    def __call__(self, method, path, body=None):
        """(status, decoded body) of one request."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Content-Type": "application/vnd.schemaregistry.v1+json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    def error(self, method, path, body=None):
        """(status, error_code) of a request that must fail."""
        status, answer = self(method, path, body)
        assert isinstance(answer, dict) and "message" in answer, answer
        return status, answer["error_code"]


def test_rest_api_happy_paths(registry_broker):
    rest = Rest(registry_broker.registry_url)
    assert rest("GET", "/") == (200, {})
    assert sorted(rest("GET", "/schemas/types")[1]) == ["AVRO", "JSON", "PROTOBUF"]
    assert rest("GET", "/subjects") == (200, [])
    v1 = json.dumps(USER_V1)
    assert rest("POST", "/subjects/u/versions", {"schema": v1}) == (200, {"id": 1})
    assert rest("POST", "/subjects/u/versions", {"schema": json.dumps(USER_V2)}) == (200, {"id": 2})
    assert rest("POST", "/subjects/w/versions", {"schema": v1}) == (200, {"id": 1})
    assert rest("GET", "/subjects") == (200, ["u", "w"])
    assert rest("GET", "/subjects?subjectPrefix=w") == (200, ["w"])
    assert rest("GET", "/subjects/u/versions") == (200, [1, 2])
    status, v = rest("GET", "/subjects/u/versions/1")
    assert status == 200 and v["subject"] == "u" and v["version"] == 1 and v["id"] == 1
    assert json.loads(v["schema"]) == USER_V1 and "schemaType" not in v
    assert rest("GET", "/subjects/u/versions/latest")[1]["version"] == 2
    assert rest("GET", "/subjects/u/versions/-1")[1]["version"] == 2
    assert json.loads(json.dumps(rest("GET", "/subjects/u/versions/1/schema")[1])) == USER_V1
    assert json.loads(rest("GET", "/schemas/ids/1")[1]["schema"]) == USER_V1
    assert rest("GET", "/schemas/ids/1/schema")[1] == USER_V1
    assert rest("GET", "/schemas/ids/1/versions")[1] == [
        {"subject": "u", "version": 1}, {"subject": "w", "version": 1}]
    assert rest("GET", "/schemas/ids/1/subjects")[1] == ["u", "w"]
    status, found = rest("POST", "/subjects/u", {"schema": v1})
    assert status == 200 and (found["version"], found["id"]) == (1, 1)
    # Compatibility checks, against the latest and a given version, with messages on request.
    v3 = {"schema": json.dumps(USER_V3)}
    assert rest("POST", "/compatibility/subjects/u/versions/latest", v3) == (
        200, {"is_compatible": False})
    status, verbose = rest("POST", "/compatibility/subjects/u/versions/1?verbose=true", v3)
    assert status == 200 and not verbose["is_compatible"] and verbose["messages"]
    assert rest("POST", "/compatibility/subjects/u/versions",
                {"schema": json.dumps(USER_V2)})[1] == {"is_compatible": True}
    assert rest("POST", "/compatibility/subjects/new/versions/latest", v3)[1] == {
        "is_compatible": True}
    # Config, global and per subject.
    assert rest("GET", "/config") == (200, {"compatibilityLevel": "BACKWARD"})
    assert rest("PUT", "/config/u", {"compatibility": "NONE"}) == (200, {"compatibility": "NONE"})
    assert rest("GET", "/config/u") == (200, {"compatibilityLevel": "NONE"})
    assert rest("POST", "/subjects/u/versions", v3) == (200, {"id": 3})
    assert rest("DELETE", "/config/u") == (200, {"compatibilityLevel": "NONE"})
    assert rest("GET", "/config/u?defaultToGlobal=true") == (200, {"compatibilityLevel": "BACKWARD"})
    assert rest("PUT", "/config", {"compatibility": "FULL_TRANSITIVE"})[0] == 200
    assert rest("GET", "/config") == (200, {"compatibilityLevel": "FULL_TRANSITIVE"})
    assert rest("DELETE", "/config") == (200, {"compatibilityLevel": "FULL_TRANSITIVE"})
    assert rest("GET", "/config") == (200, {"compatibilityLevel": "BACKWARD"})
    # Modes.
    assert rest("GET", "/mode") == (200, {"mode": "READWRITE"})
    assert rest("PUT", "/mode/w", {"mode": "READONLY"}) == (200, {"mode": "READONLY"})
    assert rest("GET", "/mode/w") == (200, {"mode": "READONLY"})
    assert rest("DELETE", "/mode/w") == (200, {"mode": "READONLY"})
    # References and referencedby.
    address = {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]}
    assert rest("POST", "/subjects/address/versions", {"schema": json.dumps(address)})[0] == 200
    person = {"type": "record", "name": "Person", "fields": [{"name": "home", "type": "Address"}]}
    status, body = rest("POST", "/subjects/person/versions", {
        "schema": json.dumps(person),
        "references": [{"name": "Address", "subject": "address", "version": 1}]})
    assert status == 200, body
    assert rest("GET", "/subjects/address/versions/1/referencedby") == (200, [body["id"]])
    status, got = rest("GET", f"/schemas/ids/{body['id']}")
    assert got["references"] == [{"name": "Address", "subject": "address", "version": 1}]
    # JSON and Protobuf carry their schemaType.
    proto = 'syntax = "proto3";\nmessage M { string a = 1; }\n'
    status, body = rest("POST", "/subjects/p/versions", {"schema": proto, "schemaType": "PROTOBUF"})
    assert status == 200, body
    assert rest("GET", "/subjects/p/versions/1")[1]["schemaType"] == "PROTOBUF"
    serialized = rest("GET", f"/schemas/ids/{body['id']}?format=serialized")[1]["schema"]
    assert serialized != proto and descriptor_pb2.FileDescriptorProto.FromString(
        __import__("base64").b64decode(serialized)).message_type[0].name == "M"
    # Deletes: soft then hard, versions then subjects.
    assert rest("DELETE", "/subjects/u/versions/1") == (200, 1)
    assert rest("GET", "/subjects/u/versions") == (200, [2, 3])
    assert rest("GET", "/subjects/u/versions?deleted=true") == (200, [1, 2, 3])
    assert rest("GET", "/subjects/u/versions/1?deleted=true")[0] == 200
    assert rest("DELETE", "/subjects/u/versions/1?permanent=true") == (200, 1)
    assert rest("DELETE", "/subjects/u") == (200, [2, 3])
    assert "u" not in rest("GET", "/subjects")[1]
    assert "u" in rest("GET", "/subjects?deleted=true")[1]
    assert rest("DELETE", "/subjects/u?permanent=true") == (200, [2, 3])
    assert "u" not in rest("GET", "/subjects?deleted=true")[1]


def test_rest_api_errors(registry_broker):
    rest = Rest(registry_broker.registry_url)
    v1 = {"schema": json.dumps(USER_V1)}
    assert rest("POST", "/subjects/u/versions", v1)[0] == 200
    assert rest.error("GET", "/subjects/nope/versions") == (404, 40401)
    assert rest.error("GET", "/subjects/nope/versions/1") == (404, 40401)
    assert rest.error("GET", "/subjects/u/versions/9") == (404, 40402)
    assert rest.error("GET", "/subjects/u/versions/zero") == (422, 42202)
    assert rest.error("GET", "/subjects/u/versions/0") == (422, 42202)
    assert rest.error("GET", "/schemas/ids/999") == (404, 40403)
    assert rest.error("POST", "/subjects/u", {"schema": '"int"'}) == (404, 40403)
    assert rest.error("POST", "/subjects/nope", v1) == (404, 40401)
    assert rest.error("POST", "/subjects/u/versions", {"schema": json.dumps(USER_V3)}) == (409, 409)
    assert rest.error("POST", "/subjects/u/versions", {"schema": "{not json"}) == (422, 42201)
    assert rest.error("POST", "/subjects/u/versions", {"schema": ""}) == (422, 42201)
    assert rest.error("POST", "/subjects/u/versions",
                      {"schema": "{}", "schemaType": "XML"}) == (422, 42201)
    assert rest.error("POST", "/subjects/x/versions", {
        "schema": json.dumps(USER_V1),
        "references": [{"name": "A", "subject": "missing", "version": 1}]}) == (422, 42201)
    assert rest.error("POST", "/subjects/p/versions",
                      {"schema": "message {", "schemaType": "PROTOBUF"}) == (422, 42201)
    assert rest.error("PUT", "/config", {"compatibility": "SIDEWAYS"}) == (422, 42203)
    assert rest.error("PUT", "/mode", {"mode": "WRITEONLY"}) == (422, 42204)
    assert rest.error("GET", "/config/u") == (404, 40408)
    assert rest.error("GET", "/mode/u") == (404, 40409)
    assert rest.error("PUT", "/mode", {"mode": "IMPORT"}) == (422, 42205)
    assert rest("PUT", "/mode/u", {"mode": "READONLY"})[0] == 200
    assert rest.error("POST", "/subjects/u/versions", {"schema": '"string"'}) == (422, 42205)
    assert rest("DELETE", "/mode/u")[0] == 200
    assert rest.error("DELETE", "/subjects/u?permanent=true") == (404, 40405)
    assert rest.error("DELETE", "/subjects/u/versions/1?permanent=true") == (404, 40407)
    assert rest("DELETE", "/subjects/u/versions/1")[0] == 200
    assert rest.error("DELETE", "/subjects/u/versions/1") == (404, 40406)
    assert rest("POST", "/subjects/u/versions", v1)[0] == 200  # version 2, the same id
    assert rest("DELETE", "/subjects/u")[0] == 200
    assert rest.error("DELETE", "/subjects/u") == (404, 40404)
    address = {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]}
    assert rest("POST", "/subjects/address/versions", {"schema": json.dumps(address)})[0] == 200
    person = {"type": "record", "name": "Person", "fields": [{"name": "home", "type": "Address"}]}
    assert rest("POST", "/subjects/person/versions", {
        "schema": json.dumps(person),
        "references": [{"name": "Address", "subject": "address", "version": 1}]})[0] == 200
    assert rest.error("DELETE", "/subjects/address/versions/1") == (422, 42206)
    assert rest.error("GET", "/no/such/path") == (404, 404)
    assert rest.error("PUT", "/subjects") == (405, 405)
    status, answer = rest("POST", "/subjects/u/versions", None)
    assert status == 400 and answer["error_code"] == 400
