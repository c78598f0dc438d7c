"""The catalogue as DCAT-AP 3 (RDF): a dcat:Catalog of the curated datasets, each with its
title and description in Chinese and English, keywords, temporal coverage, last change,
access rights (the roles that may read it), provenance (the guidelines and phenotype
algorithms it follows), a contact point and a distribution through the serving API, which
is itself a dcat:DataService. Serialised as JSON-LD or Turtle by rdflib; a test validates it
against the official DCAT-AP 3.0.0 SHACL shapes with pySHACL."""

from __future__ import annotations

from typing import Any

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
DCAT_VERSION = URIRef("http://www.w3.org/ns/dcat#version")  # DCAT 3, not in rdflib's DCAT 2 namespace
DEFAULT_BASE = "http://127.0.0.1:8765"


def _split(text: str) -> tuple[str, str | None]:
    """A '中文 / English' title as (Chinese, English)."""
    if " / " in text:
        zh, en = text.split(" / ", 1)
        return zh.strip(), en.strip()
    return text, None


def graph(entries: list[dict[str, Any]], base: str = DEFAULT_BASE, publisher: str = "medgov regional health data "
          "platform", contact_email: str = "data-office@example.org") -> Graph:
    """The DCAT-AP graph of catalogue `entries` (`catalog.catalogue`), served under `base`."""
    base = base.rstrip("/")
    g = Graph()
    g.bind("dcat", DCAT)
    g.bind("dct", DCTERMS)
    g.bind("foaf", FOAF)
    g.bind("vcard", VCARD)
    catalog = URIRef(f"{base}/catalog")
    agent = URIRef(f"{base}/#publisher")
    g.add((agent, RDF.type, FOAF.Agent))
    g.add((agent, FOAF.name, Literal(publisher)))
    contact = URIRef(f"{base}/#contact")
    g.add((contact, RDF.type, VCARD.Organization))
    g.add((contact, RDF.type, VCARD.Kind))  # stated: the shapes are checked without inference
    g.add((contact, VCARD.fn, Literal(publisher)))
    g.add((contact, VCARD.hasEmail, URIRef(f"mailto:{contact_email}")))

    service = URIRef(f"{base}/#api")
    g.add((service, RDF.type, DCAT.DataService))
    g.add((service, DCTERMS.title, Literal("medgov serving API", lang="en")))
    g.add((service, DCAT.endpointURL, _resource(g, f"{base}/")))
    g.add((service, DCAT.endpointDescription, _resource(g, f"{base}/openapi.json")))

    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, DCTERMS.title, Literal("专病数据集目录", lang="zh")))
    g.add((catalog, DCTERMS.title, Literal("Curated disease datasets", lang="en")))
    g.add((catalog, DCTERMS.description, Literal(
        "Curated disease-specific datasets of the regional health data platform: definitions, columns with "
        "their GB/T 39725 category and level, coverage and access. Rows are released to authorised roles only; "
        "feasibility counts are available under disclosure control.", lang="en")))
    g.add((catalog, DCTERMS.publisher, agent))
    g.add((catalog, DCAT.service, service))
    for e in entries:
        ds = _dataset(g, e, base, agent, contact, service)
        g.add((catalog, DCAT.dataset, ds))
        g.add((service, DCAT.servesDataset, ds))
    return g


def _dataset(g: Graph, e: dict[str, Any], base: str, agent: URIRef, contact: URIRef, service: URIRef) -> URIRef:
    ds = URIRef(f"{base}/datasets/{e['name']}")
    zh, en = _split(e["title"])
    g.add((ds, RDF.type, DCAT.Dataset))
    g.add((ds, DCTERMS.identifier, Literal(e["name"])))
    g.add((ds, DCTERMS.title, Literal(zh, lang="zh")))
    if en:
        g.add((ds, DCTERMS.title, Literal(en, lang="en")))
    g.add((ds, DCTERMS.description, Literal(e["description"], lang="en")))
    g.add((ds, DCTERMS.publisher, agent))
    g.add((ds, DCAT.contactPoint, contact))
    for word in ("专病数据集", "disease registry", e["name"].split("_")[0]):
        g.add((ds, DCAT.keyword, Literal(word, lang="zh" if word == "专病数据集" else "en")))
    rights = BNode()
    g.add((rights, RDF.type, DCTERMS.RightsStatement))
    roles = ", ".join(e["roles"]) or "none yet"
    g.add((rights, RDFS.label, Literal(f"Restricted: rows to the roles {roles}; the highest column level a role "
                                       "sees is set per role. Feasibility counts under disclosure control.",
                                       lang="en")))
    g.add((ds, DCTERMS.accessRights, rights))
    provenance = BNode()
    g.add((provenance, RDF.type, DCTERMS.ProvenanceStatement))
    g.add((provenance, RDFS.label, Literal("Definition follows: " + "; ".join(e["sources"]), lang="en")))
    g.add((ds, DCTERMS.provenance, provenance))
    published = e.get("published")
    if published:
        g.add((ds, DCTERMS.modified, Literal(published["updated"], datatype=XSD.dateTime)))
        g.add((ds, DCAT_VERSION, Literal(str(published["version"]))))
        coverage = published.get("date_coverage")
        if coverage:
            period = BNode()
            g.add((period, RDF.type, DCTERMS.PeriodOfTime))
            g.add((period, DCAT.startDate, Literal(coverage["from"], datatype=XSD.date)))
            g.add((period, DCAT.endDate, Literal(coverage["to"], datatype=XSD.date)))
            g.add((ds, DCTERMS.temporal, period))
        dist = URIRef(f"{base}/datasets/{e['name']}#api")
        g.add((dist, RDF.type, DCAT.Distribution))
        g.add((dist, DCAT.accessURL, _resource(g, f"{base}/")))
        g.add((dist, DCAT.accessService, service))
        g.add((dist, DCTERMS.title, Literal(f"{e['name']} through the medgov serving API", lang="en")))
        g.add((ds, DCAT.distribution, dist))
    theme = URIRef(f"{base}/themes/health")
    g.add((theme, RDF.type, SKOS.Concept))
    g.add((theme, SKOS.prefLabel, Literal("Health", lang="en")))
    g.add((ds, DCAT.theme, theme))
    return ds


def _resource(g: Graph, url: str) -> URIRef:
    node = URIRef(url)
    g.add((node, RDF.type, RDFS.Resource))
    return node


def serialize(g: Graph, fmt: str) -> str:
    """`jsonld` or `ttl`."""
    return g.serialize(format={"jsonld": "json-ld", "ttl": "turtle"}[fmt])
