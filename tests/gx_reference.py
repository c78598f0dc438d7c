"""Great Expectations' own verdicts on a DataFrame: the reference medgov's single-pass check
predicates are compared with (an ephemeral context: nothing is written)."""

from __future__ import annotations


class GxReference:
    """One ephemeral GX context with a whole-DataFrame batch definition on Spark."""

    def __init__(self) -> None:
        import great_expectations as gx

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self._batch = (self.context.data_sources.add_spark("s").add_dataframe_asset("a")
                       .add_batch_definition_whole_dataframe("w"))
        self._suites = 0

    def definition(self, cases: list[tuple[str, dict]]):
        """A validation definition running every (expectation type, kwargs) case as one suite."""
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        self._suites += 1
        suite = self._gx.ExpectationSuite(name=f"cases{self._suites}")
        for kind, kwargs in cases:
            suite.add_expectation(ExpectationConfiguration(type=kind, kwargs=kwargs).to_domain_obj())
        return self.context.validation_definitions.add(
            self._gx.ValidationDefinition(name=f"v{self._suites}", data=self._batch,
                                          suite=self.context.suites.add(suite)))

    @staticmethod
    def run(definition, frame, result_format="SUMMARY") -> list:
        """The expectation results of one run of `definition` on `frame`."""
        return definition.run(batch_parameters={"dataframe": frame}, result_format=result_format).results
