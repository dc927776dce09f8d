"""movierec dashboard, the Streamlit entry point: `make dashboard`, or
`streamlit run movierec_dagster/dashboard/app.py` with MOVIEREC_HOME or MOVIEREC_LAKE set."""

import streamlit as st

from movierec_dagster.dashboard import state

st.set_page_config(page_title="movierec", page_icon=":material/movie:", layout="wide")

page = st.navigation(
    [
        st.Page("pages/recommendations.py", title="Recommendations", icon=":material/recommend:", default=True),
        st.Page("pages/model.py", title="Model", icon=":material/monitoring:", url_path="model"),
    ]
)

with st.sidebar:
    st.caption(f"Lake: `{state.lake_location()}`")
    if st.button("Reload data", icon=":material/refresh:", help="Read the lake again instead of the cached answers"):
        state.clear_caches()

page.run()
