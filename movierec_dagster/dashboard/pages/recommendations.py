"""One user's top-10 recommendations beside their own highest-rated movies, with the genres recommended."""

import altair as alt
import pandas as pd
import streamlit as st

from movierec_dagster.dashboard import state
from movierec_dagster.dashboard.data import NO_GENRES, Recommendations, genre_counts, lake_location

USER_PARAM = "user"
# Tableau's 20 colours: a donut slice and its genre's name in the table share one.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d", "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6", "#79706e",
)  # fmt: skip


def _requested_user(users: list[int], date: str) -> tuple[int | None, str | None]:
    """The user named in the URL (else the first one), or None and why the URL's user cannot be shown."""
    raw = st.query_params.get(USER_PARAM)
    if raw is None or raw == "":
        return users[0], None
    try:
        user = int(raw)
    except ValueError:
        shown = raw[:40].replace("`", "")  # echoed inside code markup, so the URL cannot inject links
        return None, f"`{shown}` in the URL is not a user id."
    if user not in set(users):
        return None, (
            f"User {user} has no recommendations in the newest batch ({date}): "
            "either the id is unknown, or the user is newer than that batch. "
            "Pick a user below, or score everyone again with the demo pipeline:"
        )
    return user, None


def _titles(frame: pd.DataFrame) -> pd.Series:
    years = frame["year"].map(lambda year: "" if pd.isna(year) else f" ({int(year)})")
    return frame["title"] + years


def _genres_text(frame: pd.DataFrame) -> pd.Series:
    return frame["genres"].map(lambda genres: ", ".join(genres) if len(genres) else NO_GENRES)


def _score_name(recs: Recommendations) -> str:
    """What the list is ordered by: the model's match, or for popular movies the share of users who rated them."""
    return "Rated by" if recs.cold_start else "Match"


def _recommendation_table(recs: Recommendations) -> pd.DataFrame:
    rows = recs.rows
    return pd.DataFrame(
        {
            "Title": rows["title"],
            "Genres": _genres_text(rows),
            "Year": rows["year"].map(lambda year: "" if pd.isna(year) else str(int(year))),
            _score_name(recs): rows["score"].map(lambda score: f"{score:.0%}"),
            "Predicted stars": rows["predicted_rating"].map(lambda rating: f"{rating:.1f}"),
        },
    ).set_index(rows["rank"].rename("#"))


def _rated_table(rated: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Title": _titles(rated),
            "Genres": _genres_text(rated),
            "Rating": rated["rating"].map(lambda rating: f"{rating:.1f}"),
            "Rated on": pd.to_datetime(rated["rated_at"]).dt.strftime("%Y-%m-%d"),
        }
    ).set_index(pd.RangeIndex(1, len(rated) + 1, name="#"))


def _bar_chart(recs: Recommendations) -> alt.Chart:
    """One bar a movie, in rank order, as long as the number the list is ordered by: the bars shorten down the list."""
    name = _score_name(recs)
    frame = recs.rows.assign(label=_titles(recs.rows), genre_list=_genres_text(recs.rows))
    chart = alt.Chart(frame).encode(
        x=alt.X("score:Q", title=name, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        y=alt.Y(
            "label:N", title=None, sort=alt.EncodingSortField("rank", order="ascending"), axis=alt.Axis(labelLimit=260)
        ),
        tooltip=[
            alt.Tooltip("rank:Q", title="#"),
            alt.Tooltip("label:N", title="Movie"),
            alt.Tooltip("genre_list:N", title="Genres"),
            alt.Tooltip("score:Q", title=name, format=".0%"),
            alt.Tooltip("predicted_rating:Q", title="Predicted stars", format=".1f"),
        ],
    )
    bars = chart.mark_bar(cornerRadiusEnd=3, color=PALETTE[0])
    values = chart.mark_text(align="left", dx=4).encode(text=alt.Text("score:Q", format=".0%"))
    return (bars + values).properties(height=alt.Step(30))


def _order_explained(recs: Recommendations) -> str:
    if recs.cold_start:
        return (
            "Most-rated first: the share of users who rated each movie. "
            "The predicted stars are what this user would likely rate it."
        )
    return (
        "In order of **match**: how much the ranking model expects this user to want the movie, from what they "
        "and people like them rated. **Predicted stars** are a second model's guess at the rating they would give "
        "if they watched it, so a movie lower on the list can have more stars."
    )


def _genre_colors(genres: pd.DataFrame) -> dict[str, str]:
    return {genre: PALETTE[i % len(PALETTE)] for i, genre in enumerate(genres["genre"])}


def _donut(genres: pd.DataFrame) -> alt.Chart:
    colors = _genre_colors(genres)
    return (
        alt.Chart(genres)
        .mark_arc(innerRadius=70, stroke="white")
        .encode(
            theta=alt.Theta("movies:Q", stack=True),
            color=alt.Color("genre:N", scale=alt.Scale(domain=list(colors), range=list(colors.values())), legend=None),
            order=alt.Order("order:Q"),
            tooltip=[
                alt.Tooltip("genre:N", title="Genre"),
                alt.Tooltip("movies:Q", title="Movies"),
                alt.Tooltip("share:Q", title="Share", format=".0%"),
            ],
        )
        .transform_window(order="row_number()")
        .properties(height=320)
    )


def _genre_table(genres: pd.DataFrame):
    """The genre counts, each genre's name in its donut colour (the table is the donut's legend)."""
    colors = _genre_colors(genres)
    return genres.style.map(lambda genre: f"color: {colors[genre]}; font-weight: 600", subset=["genre"]).format(
        {"share": "{:.0%}"}
    )


def _header(recs: Recommendations) -> None:
    generated = recs.generated_at.strftime("%Y-%m-%d %H:%M")
    made_by = f"Model **{recs.model_version}**" if recs.model_version else "**Popularity baseline** (no champion model yet)"
    st.caption(f"{made_by} · batch of **{recs.date}** · made {generated} UTC")
    if recs.cold_start:
        st.badge("Cold start: most popular movies", icon=":material/ac_unit:", color="orange")
        st.caption(
            "The model had nothing to go on for this user when the batch was made (too few or no ratings), "
            "so these are popular movies they have not rated, not personal picks."
        )


def render() -> None:
    location = lake_location()
    state.check_lake(location)
    date = state.newest_recommendation_date(location)
    users = state.recommended_users(location, date)
    if not users:
        state.show_fix(f"The newest batch of recommendations ({date}) is empty. Score the users again:")
        return
    st.title("Recommendations")
    user, problem = _requested_user(users, date)
    if problem:
        state.show_fix(problem, error=True)
    picker, header = st.columns([1, 2], gap="large", vertical_alignment="bottom")
    chosen = picker.selectbox(
        f"User ({len(users):,} with recommendations)",
        users,
        index=None if user is None else users.index(user),
        placeholder="Type a user id",
        help="Type to search. The user is kept in the URL, so the view can be shared.",
    )
    if chosen is None:
        return
    st.query_params[USER_PARAM] = str(chosen)
    recs = state.recommendations(location, date, chosen)
    with header:
        _header(recs)
    newer, newest = state.rated_after(location, chosen, recs.generated_at)
    if newer:
        st.info(
            f"User {chosen} rated {newer} movie{'s' if newer > 1 else ''} after this batch was made (the newest on "
            f"{newest:%Y-%m-%d %H:%M} UTC), so this list does not count {'them' if newer > 1 else 'it'} yet. The API "
            f"answers with a fresh list that does: `GET /users/{chosen}/recommendations` (source `fold_in`, make serve).",
            icon=":material/update:",
        )

    left, right = st.columns(2, gap="large")
    with left:
        st.subheader(f"Top {len(recs.rows)} recommendations for user {chosen}")
        with st.container(key="recommendations"):
            st.table(_recommendation_table(recs))
        st.caption(_order_explained(recs))
    with right:
        tables, rated = state.top_rated(location, chosen)
        source = " and ".join(f"`{table}`" for table in tables)
        st.subheader("Their own highest-rated movies")
        if rated.empty:
            st.info(f"User {chosen} has no ratings in {source}.")
        else:
            with st.container(key="top_rated"):
                st.table(_rated_table(rated))
            st.caption(f"From {source}: the history and every streamed rating, the latest per movie.")

    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("How popular" if recs.cold_start else "Match")
        st.altair_chart(_bar_chart(recs), width="stretch")
    with right:
        st.subheader("Top genres based on the recommendations")
        genres = genre_counts(recs.rows)
        donut, table = st.columns([1, 1])
        with donut:
            st.altair_chart(_donut(genres), width="stretch")
        with table:
            with st.container(key="genres"):
                st.dataframe(
                    _genre_table(genres),
                    hide_index=True,
                    height=(len(genres) + 1) * 35 + 3,  # every genre, no inner scrolling
                    column_config={
                        "genre": "Genre",
                        "movies": st.column_config.NumberColumn("Movies", help="How many of the 10 carry the genre"),
                        "share": st.column_config.TextColumn("Share", help="Share of all genre labels"),
                    },
                )


with state.shown_problems():
    render()
